"""A trained model from Python, on raw input, and one's own data: what the README's "Use a trained model" and
"Your own data" sections promise, on checkpoints these tests train in a few steps."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from residual_kit.models import create_model
from tasks.data.image_folder import read_image_folder

STEPS = [
    "--trainer.max_steps=2",
    "--trainer.limit_val_batches=1",
    "--trainer.limit_test_batches=1",
    "--trainer.enable_progress_bar=false",
    "--test_after_fit=false",
]


def last_checkpoint(root, task: str):
    (path,) = (root / task).glob("version_*/checkpoints/last.ckpt")
    return path


def digit_png(path, value: int = 200) -> None:
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[6:22, 12:16] = value  # a "1"
    Image.fromarray(pixels).save(path)


def test_an_image_classifier_classifies_image_files_and_pil_images(tmp_path):
    from tasks.resnet import ImageClassifier, cli_main

    cli_main(["fit", *STEPS, "--model.net.arch=resnet8", f"--trainer.default_root_dir={tmp_path}"])
    path = last_checkpoint(tmp_path, "resnet")
    model = ImageClassifier.load_from_checkpoint(path)
    digit_png(tmp_path / "one.png")
    labels = model.classify([tmp_path / "one.png", Image.open(tmp_path / "one.png")])
    assert len(labels) == 2 and labels[0] == labels[1] and labels[0] in model.class_names
    probabilities = model.probabilities(str(tmp_path / "one.png"))
    assert probabilities.shape == (1, 10) and torch.allclose(probabilities.sum(1), torch.ones(1))
    net = create_model("resnet8", checkpoint=path)  # the bare network, no Lightning
    x = model.preprocess(tmp_path / "one.png")
    torch.testing.assert_close(net(x), model.net(x))
    Image.new("L", (32, 32)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="is 32x32 but the model reads 28x28 images: resize it"):
        model.classify(tmp_path / "big.png")
    with pytest.raises(ValueError, match="holds a ResNetConfig network, not gpt"):
        create_model("gpt", checkpoint=path)


def folder_of_images(root, size: int = 12, per_class: int = 12, mode: str = "L") -> None:
    rng = np.random.default_rng(0)
    for name, level in (("dark", 30), ("bright", 220)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 20, (size, size) if mode == "L" else (size, size, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), mode=None).save(root / name / f"{i}.png")


def test_resnet_trains_on_a_folder_of_ones_own_images_and_saves_its_preprocessing(tmp_path):
    from tasks.resnet import ImageClassifier, cli_main

    folder_of_images(tmp_path / "photos", mode="RGB")
    root = tmp_path / "runs"
    cli = cli_main(
        [
            "fit",
            *STEPS,
            "--data.dataset=folder",
            f"--data.root={tmp_path / 'photos'}",
            "--data.batch_size=8",
            "--model.net.arch=resnet8",
            f"--trainer.default_root_dir={root}",
        ]
    )
    assert cli.model.net.config.in_channels == 3 and cli.model.class_names == ["bright", "dark"]
    model = ImageClassifier.load_from_checkpoint(last_checkpoint(root, "resnet"))
    assert model.hparams.image_size == 12 and model.hparams.mean[0] == pytest.approx(cli.datamodule.mean[0])
    assert model.classify(tmp_path / "photos" / "dark" / "0.png")[0] in ("bright", "dark")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "is not a folder"),
        (lambda root: root.mkdir(), "has no class subfolders"),
        (lambda root: (root / "cats").mkdir(parents=True), r"cats/ has no images"),
        (
            lambda root: (folder_of_images(root), (root / "dark" / "0.png").write_bytes(b"not a png")),
            r"0.png is not a readable image",
        ),
        (
            lambda root: (folder_of_images(root), Image.new("L", (16, 16)).save(root / "dark" / "z.png")),
            r"images of mixed sizes: .* pass --data.size=N",
        ),
    ],
)
def test_bad_image_folders_are_named_in_one_line(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        read_image_folder(root)


def mixed_rgb_folder(root, classes=("circle", "square", "stripe"), per_class: int = 8) -> None:
    """RGB images of several sizes and aspect ratios, three classes."""
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (25, 25), (64, 48), (33, 50)]
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            pixels = rng.integers(0, 60, (h, w, 3)) + 60 * c
            Image.fromarray(pixels.astype(np.uint8), mode="RGB").save(root / name / f"{i}.png")


def test_the_shipped_digit_network_fine_tunes_on_a_folder_of_mixed_size_rgb_images(tmp_path, caplog):
    """The README's fine-tuning command: three new classes (the head starts anew), RGB (the first convolution
    adapted from grey), images of any size brought to --data.size, read from disk as batches need them."""
    from tasks.data.image_folder import FolderImages
    from tasks.resnet import ImageClassifier, cli_main

    mixed_rgb_folder(tmp_path / "photos")
    caplog.set_level(logging.INFO)
    cli = cli_main(
        ["fit", *STEPS, "--data.dataset=folder", f"--data.root={tmp_path / 'photos'}", "--data.size=32",
         "--data.batch_size=8", "--model.init_from=digits", f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    )  # fmt: skip
    said = caplog.text
    assert "init from digits:" in said and "adapted to the input's channels: stem.0.weight" in said
    assert "started anew (no match): head.2.weight, head.2.bias" in said
    assert isinstance(cli.datamodule.train_set, FolderImages) and cli.model.net.config.in_channels == 3
    assert cli.model.class_names == ["circle", "square", "stripe"]
    model = ImageClassifier.load_from_checkpoint(last_checkpoint(tmp_path / "runs", "resnet"))
    Image.new("RGB", (50, 37), (200, 10, 10)).save(tmp_path / "odd.png")
    assert model.classify(tmp_path / "odd.png")[0] in model.class_names  # brought to 32x32 as in training


def test_init_from_loads_what_matches_and_names_what_does_not(tmp_path):
    from residual_kit.transfer import adapt_input_conv, initial_weights, load_matching

    net = create_model("resnet20", in_channels=3, num_classes=5)
    shipped = initial_weights("digits", "resnet20")
    report = load_matching(net, shipped)
    assert report.adapted == ["stem.0.weight"] and set(report.new) == {"head.2.weight", "head.2.bias"}
    torch.testing.assert_close(net.state_dict()["stages.0.0.wrap.0.weight"], shipped["stages.0.0.wrap.0.weight"])
    grey = torch.rand(1, 1, 5, 5).expand(1, 1, 5, 5)
    w = torch.randn(4, 1, 3, 3)
    colour = torch.nn.functional.conv2d(grey.expand(1, 3, 5, 5), adapt_input_conv(w, 3))
    torch.testing.assert_close(colour, torch.nn.functional.conv2d(grey, w))  # a grey image in colour: the same
    with pytest.raises(FileNotFoundError, match=r"init_from .*none.ckpt does not exist"):
        initial_weights(str(tmp_path / "none.ckpt"), "resnet20")
    with pytest.raises(ValueError, match="no shipped weights 'digits' for 'resnet56'"):
        initial_weights("digits", "resnet56")


def test_a_digit_transformer_completes_sums_and_a_text_model_continues_prompts(tmp_path):
    from tasks.transformer import DigitTransformer, cli_main

    cli_main(
        [
            "fit",
            *STEPS,
            "--trainer.val_check_interval=2",
            "--data.num_train=256",
            "--data.num_val=32",
            "--model.net.layers=1",
            "--model.net.dim=16",
            f"--trainer.default_root_dir={tmp_path / 'digits'}",
        ]
    )
    digits = DigitTransformer.load_from_checkpoint(last_checkpoint(tmp_path / "digits", "transformer"))
    (answer,) = digits.complete("123+456=")
    # after 2 steps any token may come out; what comes back is the read answer: no end token, at most answer_len
    assert isinstance(answer, str) and "$" not in answer and len(answer) <= digits.hparams.answer_len
    text = tmp_path / "notes.txt"
    text.write_text("def add(a, b):\n    return a + b\n" * 300)
    cli_main(
        [
            "fit",
            *STEPS,
            "--trainer.val_check_interval=2",
            f"--data.text_file={text}",
            "--data.batch_size=4",
            "--data.block_size=32",
            "--data.continuation=10",
            "--model.net.layers=1",
            "--model.net.dim=16",
            f"--trainer.default_root_dir={tmp_path / 'text'}",
        ]
    )
    path = last_checkpoint(tmp_path / "text", "transformer")
    model = DigitTransformer.load_from_checkpoint(path)
    (continuation,) = model.complete("def add(")
    assert isinstance(continuation, str) and 0 < len(continuation.encode("utf-8", errors="replace")) <= 40
    assert model.complete("def add(") == model.complete("def add(")  # a seed gives one continuation
    out = tmp_path / "continued.csv"
    cli_main(["predict", f"--ckpt_path={path}", '--data.prompts=["def add("]', f"--predictions.output={out}"])
    (row,) = list(csv.DictReader(open(out)))
    assert row["prompt"] == "def add(" and row["answer"]


def test_a_strip_reader_reads_a_png_strip(tmp_path):
    from tasks.lstm import StripReader, cli_main

    cli_main(
        [
            "fit",
            *STEPS,
            "--data.source=embedded",
            "--data.batch_size=8",
            "--data.num_train=64",
            "--data.num_val=8",
            "--data.num_test=8",
            "--model.net.dim=16",
            "--model.net.layers=2",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    model = StripReader.load_from_checkpoint(last_checkpoint(tmp_path, "lstm"))
    Image.fromarray(np.zeros((28, 60), dtype=np.uint8)).save(tmp_path / "strip.png")
    (reading,) = model.read(tmp_path / "strip.png")
    assert set(reading) <= set("0123456789")


def test_a_gan_draws_digits_of_the_asked_labels(tmp_path, judge_path):
    from tasks.gan import DigitGAN, cli_main

    cli_main(
        [
            "fit",
            *STEPS,
            "--data.source=embedded",
            "--data.batch_size=8",
            "--model.net.dim=8",
            "--model.net.z_dim=16",
            f"--evaluation.classifier_path={judge_path}",
            "--evaluation.samples=8",
            "--trainer.check_val_every_n_epoch=1",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    path = last_checkpoint(tmp_path, "gan")
    gan = DigitGAN.load_from_checkpoint(path)
    digits = gan.draw([3, 3, 7])
    assert digits.shape == (3, 1, 28, 28) and 0 <= digits.min() and digits.max() <= 1
    torch.testing.assert_close(gan.draw([3, 3, 7]), digits)  # digit i's noise comes from seed i
    generator = create_model("resnet_generator", checkpoint=path)  # the averaged generator, no Lightning
    assert sum(p.numel() for p in generator.parameters()) == sum(p.numel() for p in gan.ema.module.parameters())


def test_every_fit_draws_its_learning_curves(tmp_path):
    from tasks.resnet import cli_main

    cli_main(
        [
            "fit",
            "--trainer.max_steps=3",
            "--trainer.val_check_interval=1",
            "--trainer.limit_val_batches=1",
            "--test_after_fit=false",
            "--trainer.enable_progress_bar=false",
            "--model.net.arch=resnet8",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    (curves,) = (tmp_path / "resnet").glob("version_*/curves.png")
    assert curves.stat().st_size > 5000 and (curves.parent / "metrics.csv").is_file()


def test_the_default_run_reads_the_embedded_digits_whatever_the_network(monkeypatch):
    """The quick start trains on the same 4,000 digits on every machine: MNIST's source defaults to embedded."""
    from tasks.data import ImageDataModule, sources

    monkeypatch.setattr(sources, "download", lambda *a, **k: pytest.fail("the default run must not download"))
    dm = ImageDataModule()
    dm.setup("fit")
    assert dm.source_used == "embedded" and len(dm.train_set) == 4000
    assert ImageDataModule("cifar10").source == "auto"


def test_shipped_configs_are_found_by_name_outside_a_checkout(tmp_path, monkeypatch):
    from tasks.resnet import cli_main

    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    cli = cli_main(["fit", "--config", "mnist_resnet20", "--trainer.fast_dev_run=true", "--data.source=embedded"])
    assert cli.model.hparams.schedule == "steps"
    cli = cli_main(["fit", "--config=configs/mnist_resnet20.yaml", "--trainer.fast_dev_run=true"])
    assert cli.model.hparams.schedule == "steps"


def test_tensorboard_logger_as_the_readme_gives_it_logs_events_and_curves(tmp_path):
    pytest.importorskip("tensorboard")  # a dev dependency: installed wherever the suite runs
    from tasks.resnet import cli_main

    cli_main(
        [
            "fit",
            *STEPS,
            "--model.net.arch=resnet8",
            "--trainer.logger=TensorBoardLogger",
            f"--trainer.logger.save_dir={tmp_path}",
            "--trainer.logger.name=resnet",
        ]
    )
    (run,) = (tmp_path / "resnet").glob("version_*")
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard wrote no event file"
    assert (run / "curves.png").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
