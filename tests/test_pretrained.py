"""Shipped weights: found by name offline, their SHA-256 checked, and as accurate as the README says."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

import residual_kit.pretrained as pretrained
from residual_kit.models import create_model
from residual_kit.pretrained import PRETRAINED
from tasks.data.images import ImageDataModule

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_file_is_there_with_its_sha256():
    for key, entry in PRETRAINED.items():
        path = pretrained.WEIGHTS / entry.file
        assert path.is_file(), key
        assert pretrained.sha256(path) == entry.sha256, key


def test_the_shipped_digit_network_reads_the_embedded_test_digits_as_the_readme_says():
    """The 500 held-out digits of the embedded set, as the README's block reads them: the accuracy it prints."""
    net = create_model("resnet20", pretrained="digits")
    data = ImageDataModule(augment=False)
    data.setup("test")
    x, y = next(iter(torch.utils.data.DataLoader(data.test_set, batch_size=len(data.test_set))))
    p = net.preprocessing
    assert (p["mean"], p["std"]) == ([0.1307], [0.3081]) and len(y) == 500
    with torch.no_grad():
        accuracy = (net(x).argmax(1) == y).float().mean()
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if 'pretrained="digits"' in b)
    assert f"# -> {accuracy:.1%}" in block


def test_a_damaged_weight_file_is_refused_in_one_line(tmp_path, monkeypatch):
    for entry in PRETRAINED.values():
        shutil.copy(pretrained.WEIGHTS / entry.file, tmp_path / entry.file)
    damaged = tmp_path / PRETRAINED["resnet20.digits"].file
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped in the middle of the weights
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path)
    with pytest.raises(ValueError, match=r"has SHA-256 .* not the .* it shipped with: .* reinstall residual-kit"):
        create_model("resnet20", pretrained="digits")


def test_weights_that_do_not_ship_are_named():
    with pytest.raises(ValueError, match=r"no shipped weights 'cifar' for 'resnet20': what ships is \"digits\""):
        create_model("resnet20", pretrained="cifar")
    with pytest.raises(ValueError, match="not both"):
        create_model("resnet20", checkpoint="x.ckpt", pretrained="digits")


def test_the_shipped_transformer_adds_as_its_task_module_offline():
    from tasks.transformer import DigitTransformer

    model = DigitTransformer.load_from_checkpoint(pretrained.pretrained_path("gpt", "addition"))
    g = torch.Generator().manual_seed(0)
    pairs = torch.randint(0, 1000, (200, 2), generator=g).tolist()
    answers = model.complete([f"{a}+{b}=" for a, b in pairs])
    assert sum(answer == str(a + b) for answer, (a, b) in zip(answers, pairs, strict=True)) >= 196


def test_the_shipped_lstm_reader_reads_the_embedded_test_strips_as_its_task_module():
    from tasks.data.digit_strips import DigitStripDataModule
    from tasks.lstm import StripReader

    model = StripReader.load_from_checkpoint(pretrained.pretrained_path("lstm_reader", "strips")).eval()
    data = DigitStripDataModule(num_test=300)
    data.setup("test")
    right = 0
    for images, labels, _ in torch.utils.data.DataLoader(data.test_set, batch_size=100):
        with torch.no_grad():
            read = model.decode(model(images))
        right += sum(
            r == "".join(str(d) for d in label.tolist() if d >= 0) for r, label in zip(read, labels, strict=True)
        )
    assert right >= 0.95 * 300


def test_the_shipped_gan_draws_digits_the_shipped_judge_reads_as_asked():
    """The README's GAN row (seed 42): 97.9% of its digits carry the label asked; 500 drawn here must be read as
    asked at least 95% of the time, and create_model's generator is the task's averaged one, weight for weight."""
    from tasks.gan import DigitGAN
    from tasks.gan.classifier import DigitClassifier, load_digit_classifier

    gan = DigitGAN.load_from_checkpoint(pretrained.pretrained_path("resnet_generator", "digits"), map_location="cpu")
    asked = [i % 10 for i in range(500)]
    digits = gan.eval().draw(asked)
    assert digits.shape == (500, 1, 28, 28) and 0 <= digits.min() and digits.max() <= 1
    judge = DigitClassifier(load_digit_classifier())
    with torch.no_grad():
        read = judge.logits(digits).argmax(1)
    assert (read == torch.tensor(asked)).float().mean() >= 0.95
    generator = create_model("resnet_generator", pretrained="digits", conditions=10)
    averaged = gan.ema.module.state_dict()
    assert generator.state_dict().keys() == averaged.keys()
    assert all(torch.equal(w, averaged[k]) for k, w in generator.state_dict().items())
