"""One shape for every task: outputs where the user points, our defaults replaceable, old names named."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pytorch_lightning.callbacks import ModelSummary, RichProgressBar, TQDMProgressBar

from residual_kit.models.options import ModelPlacement
from tasks.core.callbacks import DivergenceGuard, ReproducibleEpochs
from tasks.data import sources
from tasks.gan import cli_main as gan_main
from tasks.resnet import cli_main as resnet_main
from tasks.transformer import cli_main as transformer_main

ROOT = Path(__file__).parents[1]
TINY = ["--data.source=embedded", "--model.net.arch=resnet8", "--data.batch_size=32"]
SHORT = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
         "--trainer.limit_test_batches=1", "--trainer.log_every_n_steps=1"]  # fmt: skip


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / ".")


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_fit_test_and_predict_write_only_under_default_root_dir(tmp_path):
    (tmp_path / "cwd").mkdir()
    out = tmp_path / "elsewhere"
    import os

    os.chdir(tmp_path / "cwd")
    resnet_main(["fit", *TINY, *SHORT, f"--trainer.default_root_dir={out}"])
    run = out / "resnet" / "version_0"
    assert {"config.yaml", "metrics.csv", "confusion_matrix.png", "checkpoints/last.ckpt"} <= files_under(run)
    ckpt = run / "checkpoints" / "last.ckpt"
    digit = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (28, 28)).save(digit)
    resnet_main(["test", *TINY, "--trainer.limit_test_batches=1", f"--trainer.default_root_dir={out}",
                 f"--ckpt_path={ckpt}"])  # fmt: skip
    resnet_main(["predict", *TINY, f"--trainer.default_root_dir={out}", f"--ckpt_path={ckpt}",
                 f"--data.predict_path={digit}"])  # fmt: skip
    assert files_under(tmp_path / "cwd") == set()  # no runs/, no data/, no predictions.csv here
    versions = sorted(p.name for p in (out / "resnet").iterdir())
    assert versions == ["version_0", "version_1", "version_2"]
    assert (out / "resnet" / "version_2" / "predictions.csv").read_text().startswith("path,label")
    assert all(any(v.iterdir()) for v in (out / "resnet").iterdir())  # no empty folders


def test_an_offline_fit_leaves_no_empty_data_folder(tmp_path, monkeypatch):
    """A failed download must not leave the data root behind (the user asked for nothing there)."""

    def offline(*args, **kwargs):
        raise OSError("offline (test)")

    monkeypatch.setattr("torchvision.datasets.MNIST", offline)
    with pytest.raises(sources.DataNotFoundError):
        sources.load_dataset("fashion_mnist", "download", tmp_path / "data" / "deep")
    assert not (tmp_path / "data").exists()


def test_a_users_progress_bar_replaces_ours():
    cli = resnet_main(["fit", *TINY, "--trainer.fast_dev_run=true", "--trainer.callbacks+=TQDMProgressBar"])
    bars = [c for c in cli.trainer.callbacks if isinstance(c, (RichProgressBar, TQDMProgressBar))]
    assert [type(b) for b in bars] == [TQDMProgressBar]


def test_a_users_callback_keeps_our_defaults():
    cli = resnet_main(["fit", *TINY, "--trainer.fast_dev_run=true", "--trainer.callbacks+=ModelSummary"])
    kinds = {type(c) for c in cli.trainer.callbacks}
    assert {ModelSummary, RichProgressBar, DivergenceGuard, ReproducibleEpochs} <= kinds


def test_the_guards_switch_off():
    cli = resnet_main(["fit", *TINY, "--trainer.fast_dev_run=true", "--divergence_guard=false",
                       "--reproducible_epochs=false"])  # fmt: skip
    assert not any(isinstance(c, (DivergenceGuard, ReproducibleEpochs)) for c in cli.trainer.callbacks)


@pytest.mark.parametrize("arg", ["--optimizer=AdamW", "--lr_scheduler=StepLR"])
def test_lightning_optimizer_switch_is_refused_in_one_line(arg):
    with pytest.raises(ValueError, match=r"not an option of residual-kit tasks.*--model"):
        resnet_main(["fit", arg])


@pytest.mark.parametrize(
    ("main", "old", "new"),
    [
        (resnet_main, "--model.preact=true", "--model.net.placement=pre"),
        (resnet_main, "--model.plain=true", "--model.net.residual=false"),
        (resnet_main, "--model.arch=resnet56", "--model.net.arch"),
        (transformer_main, "--model.placement=rezero", "--model.net.scale=rezero"),
        (resnet_main, "--model.net.zero_init_last=true", "--model.net.init=zero_last"),
        (resnet_main, "--model.net.width=0.5", "--model.net.width_multiplier"),
        (transformer_main, "--model.net.streams=2", "--model.net.stack_options"),
        (gan_main, "--model.net.clusters=50", "--model.condition=Clusters --model.condition.clusters=N"),
        (gan_main, "--model.best_of=2", "--model.sampling.best_of"),
    ],
)
def test_old_option_names_say_the_new_one_and_the_version(main, old, new):
    with pytest.raises(ValueError, match=r"stopped working in residual-kit 0\.[23]\.0") as err:
        main(["fit", old])
    assert new in str(err.value)


def test_old_keys_in_a_config_file_say_the_new_one(tmp_path):
    config = tmp_path / "old.yaml"
    config.write_text("model:\n  arch: resnet56\n  plain: true\n")
    with pytest.raises(
        ValueError, match=r"old.yaml: --model.arch stopped working in residual-kit 0.2.0: use --model.net"
    ):
        resnet_main(["fit", f"--config={config}"])
    config.write_text("fit:\n  model:\n    net:\n      zero_init_last: true\n")
    with pytest.raises(ValueError, match=r"--model.net.zero_init_last stopped working in residual-kit 0.3.0"):
        resnet_main([f"--config={config}", "fit"])


def test_a_checkpoint_of_0_2_0_is_refused_in_one_line_that_names_the_version(tmp_path):
    """0.2.0 checkpoints carry no residual_kit entry; the option names changed since, so they are not loaded."""
    import torch

    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": {"arch": "resnet20", "width": 1.0}}}, old)
    with pytest.raises(ValueError, match=r"written by residual-kit 0.2.0 or earlier.*retrain"):
        resnet_main(["test", f"--ckpt_path={old}"])


def test_old_option_from_the_shell_is_one_line():
    done = subprocess.run([sys.executable, "-m", "tasks.resnet", "fit", "--model.preact=true"], capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(
        "error: --model.preact stopped working in residual-kit 0.2.0: use --model.net.placement=pre"
    )
    assert "Traceback" not in done.stderr


def test_no_warning_a_user_cannot_act_on(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tasks.resnet", "fit", *TINY, "--trainer.fast_dev_run=true",
         f"--trainer.default_root_dir={tmp_path}"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for noise in ("litlogger", "LeafSpec", "UserWarning", "LightningCLI's args"):
        assert noise not in done.stdout + done.stderr
    assert not re.search(r"\.py:\d+: ", done.stdout + done.stderr)  # no warning of any kind ("file.py:N: ...")
    assert "embedded 5k subset" in done.stdout + done.stderr  # the notice itself stays


def test_options_beside_ckpt_path_override_the_checkpoints_hyperparameters(tmp_path):
    """The checkpoint's hyperparameters are the defaults, what the user writes wins: Lightning alone let
    the checkpoint win, so `test --ckpt_path X --model.<option>=...` silently ran with X's value."""
    out = [f"--trainer.default_root_dir={tmp_path / 'runs'}", "--trainer.limit_test_batches=1"]
    resnet_main(["fit", *TINY, *SHORT, *out, "--model.label_smoothing=0.1", "--model.net.width_multiplier=0.5"])
    ckpt = tmp_path / "runs" / "resnet" / "version_0" / "checkpoints" / "last.ckpt"

    def tested(*args: str) -> dict:
        return dict(resnet_main(["test", "--data.source=embedded", *out, f"--ckpt_path={ckpt}", *args]).model.hparams)

    kept = tested()
    assert (
        kept["label_smoothing"] == 0.1 and kept["net"]["width_multiplier"] == 0.5 and kept["net"]["arch"] == "resnet8"
    )
    assert tested("--model.label_smoothing=0.2")["label_smoothing"] == 0.2  # the command line wins
    config = tmp_path / "smoothing.yaml"
    config.write_text("model:\n  label_smoothing: 0.3\n")
    assert tested(f"--config={config}")["label_smoothing"] == 0.3  # so does a --config file


PLACEMENTS = [*get_args(get_args(ModelPlacement)[0]), *get_args(get_args(ModelPlacement)[1]), "null"]


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("task", ["resnet", "transformer", "lstm", "gan"])
def test_every_placement_value_parses_in_every_task(task, placement, capsys):
    """One type for the option in every family: `--model.net.placement=mix` is typed as users type it."""
    main = __import__(f"tasks.{task}", fromlist=["cli_main"]).cli_main
    with pytest.raises(SystemExit) as done:
        main(["fit", f"--model.net.placement={placement}", "--print_config"])
    assert done.value.code in (0, None)
    assert f"placement: {placement}" in capsys.readouterr().out
