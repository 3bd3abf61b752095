"""`python -m tasks.resnet` as a user types it: fit, test, predict, configs, and bad input."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from residual_kit.models import ResNetConfig
from tasks.data import sources as images_mod
from tasks.resnet import ImageClassifier, cli_main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--trainer.fast_dev_run=true", "--data.source=embedded", "--data.batch_size=16"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(images_mod, "download", lambda *a, **k: (_ for _ in ()).throw(OSError("offline (test)")))


def test_fit_fast_dev_run_then_test():
    cli = cli_main(["fit", *FAST])
    assert cli.trainer.state.finished
    assert "test/acc" in cli.trainer.callback_metrics
    assert isinstance(cli.model, ImageClassifier) and cli.model.net.stem[0].in_channels == 1


def test_fit_without_logger_or_progress_bar():
    """The always-on callbacks (lr monitor, rich bar, checkpoints) step aside instead of making Trainer refuse."""
    off = ["--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false"]
    cli = cli_main(["fit", *FAST, *off])
    assert cli.trainer.state.finished and cli.trainer.logger is None


def test_fit_writes_checkpoints_and_confusion_matrix(tmp_path):
    args = ["fit", "--data.source=embedded", "--data.batch_size=32", "--trainer.max_epochs=1"]
    args += ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2"]
    cli_main(args)
    run = tmp_path / "runs" / "resnet" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-epoch00-acc*.ckpt"))
    png = run / "confusion_matrix.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test/acc" in (run / "metrics.csv").read_text()


class StopAfterFirstEpoch(pl.Callback):
    """Stands in for a run killed after its first epoch."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


def test_resume_from_last_checkpoint(tmp_path):
    common = ["--data.source=embedded", "--data.batch_size=32", "--trainer.limit_train_batches=2"]
    common += ["--trainer.limit_val_batches=1", "--test_after_fit=false", "--trainer.max_epochs=2"]
    first = cli_main(["fit", *common, f"--trainer.callbacks+={__name__}.StopAfterFirstEpoch"])
    assert first.trainer.current_epoch == 1
    last = tmp_path / "runs" / "resnet" / "version_0" / "checkpoints" / "last.ckpt"
    cli = cli_main(["fit", *common, f"--ckpt_path={last}"])
    assert cli.trainer.current_epoch == 2 and cli.trainer.global_step == 4


def test_predict_writes_csv_from_png_files(tmp_path):
    cli = cli_main(["fit", *FAST, "--test_after_fit=false"])
    ckpt = tmp_path / "model.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    folder = tmp_path / "digits"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(folder / f"d{i}.png")
    Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(folder / "rgb.png")  # converted to L
    out = tmp_path / "preds.csv"
    cli_main(["predict", f"--ckpt_path={ckpt}", f"--data.predict_path={folder}", f"--predictions.output={out}"])
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["path"]).name for r in rows] == ["d0.png", "d1.png", "d2.png", "rgb.png"]
    for r in rows:
        probs = [float(r[f"p_{d}"]) for d in range(10)]
        assert sum(probs) == pytest.approx(1, abs=1e-4)
        assert r["label"] == str(int(np.argmax(probs)))


def test_predict_wrong_size_png_is_named(tmp_path):
    cli = cli_main(["fit", *FAST, "--test_after_fit=false"])
    ckpt = tmp_path / "model.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    Image.new("L", (40, 40)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="40x40 but the model reads 28x28"):
        cli_main(["predict", f"--ckpt_path={ckpt}", f"--data.predict_path={tmp_path / 'big.png'}"])


@pytest.mark.parametrize(
    "variant",
    [
        ["--model.net.residual=false"],
        ["--model.net.placement=pre"],
        ["--model.net.scale=rezero", "--model.net.drop_path=0.1"],
    ],
)
def test_model_options_from_the_cli(variant):
    cli = cli_main(["fit", *FAST, "--test_after_fit=false", *variant])
    assert cli.trainer.state.finished


@pytest.mark.parametrize(
    "config", sorted(p.name for p in (ROOT / "configs").glob("*.yaml") if not p.name.startswith("gan_"))
)  # gan_*.yaml belong to tasks.gan: tests/test_gan.py runs them
def test_every_shipped_config_parses_and_runs(config, tmp_path):
    from tests.test_data import write_tiny_cifar, write_tiny_idx

    cfg = ROOT / "configs" / config
    if config.startswith("mnist"):
        extra = ["--data.source=embedded"]
    else:  # Fashion-MNIST and CIFAR-10 may not be on this machine: the config's model on a tiny folder
        (write_tiny_cifar if config.startswith("cifar10") else write_tiny_idx)(tmp_path / "fake")
        extra = ["--data.source=folder", f"--data.root={tmp_path / 'fake'}"]
    cli = cli_main(["fit", f"--config={cfg}", *extra, "--trainer.fast_dev_run=true", "--data.batch_size=8"])
    assert cli.trainer.state.finished


def test_fit_as_typed_in_a_shell(tmp_path):
    cmd = [sys.executable, "-m", "tasks.resnet", "fit", *FAST]
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test/acc" in done.stdout


def test_print_config_and_typo_in_config_key():
    ok = subprocess.run(
        [sys.executable, "-m", "tasks.resnet", "fit", "--print_config"], capture_output=True, text=True, cwd=ROOT
    )
    assert ok.returncode == 0 and "arch: resnet20" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "tasks.resnet", "fit", "--model.net.arhc=resnet56"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode != 0 and "arhc" in bad.stderr


def test_missing_checkpoint_path_is_named(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError), match=r"nope\.ckpt"):
        cli_main(["test", *FAST, f"--ckpt_path={tmp_path / 'nope.ckpt'}"])


def test_module_importable_for_users():
    model = ImageClassifier(ResNetConfig("resnet8", in_channels=3))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_predict_names_every_bad_file_before_it_starts(tmp_path):
    from tasks.data.image_files import ImageFiles

    for name, size in [("a.png", 28), ("b.png", 32), ("c.png", 40)]:
        Image.new("L", (size, size)).save(tmp_path / name)
    paths = sorted(tmp_path.glob("*.png"))
    with pytest.raises(ValueError, match=r"b.png is 32x32; .*c.png is 40x40 but the model reads 28x28 images"):
        ImageFiles(paths, 1, 28, lambda x: x)


def test_test_time_flip_averages_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = ImageClassifier(ResNetConfig("resnet8"), test_time_flip=True).eval()
    x = torch.randn(4, 1, 28, 28)
    mean_p = (model(x).softmax(-1) + model(x.flip(-1)).softmax(-1)) / 2
    torch.testing.assert_close(model.evaluate(x), mean_p.log())
    assert not torch.allclose(model.evaluate(x), model(x).log_softmax(-1))  # the mirror really took part
    model.hparams.test_time_flip = False
    torch.testing.assert_close(model.evaluate(x), model(x).log_softmax(-1))


def test_test_time_flip_on_digits_is_refused():
    with pytest.raises(ValueError, match=r"test_time_flip .* set it false for mnist"):
        cli_main(["fit", *FAST, "--model.test_time_flip=true"])
