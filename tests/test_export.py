"""`export`: each task's network as ONNX (run by onnxruntime) and as a `torch.export` program, taking raw input,
matching PyTorch within 1e-4 at batch sizes and lengths other than the one it was exported with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tasks.lstm import StripReader
from tasks.lstm import cli_main as lstm_main
from tasks.resnet import ImageClassifier
from tasks.resnet import cli_main as resnet_main
from tasks.transformer import DigitTransformer
from tasks.transformer import cli_main as transformer_main

ort = pytest.importorskip("onnxruntime")

STEPS = ["--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--test_after_fit=false",
         "--trainer.enable_progress_bar=false"]  # fmt: skip
TASKS = {
    "resnet": (resnet_main, ImageClassifier, ["--model.net.arch=resnet8", "--data.batch_size=16"]),
    "transformer": (transformer_main, DigitTransformer, ["--data.num_train=256", "--data.num_val=32",
                                                         "--trainer.val_check_interval=2", "--model.net.layers=1",
                                                         "--model.net.dim=16"]),
    "lstm": (lstm_main, StripReader, ["--data.batch_size=8", "--data.num_train=64", "--data.num_val=8",
                                      "--model.net.dim=16", "--model.net.layers=2"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    found = {}
    for task, (main, _, small) in TASKS.items():
        main(["fit", *STEPS, *small, f"--trainer.default_root_dir={root}"])
        (found[task],) = root.glob(f"{task}/version_0/checkpoints/last.ckpt")
    return found


def inputs(task: str, model, program: bool = False) -> list[torch.Tensor]:
    """Inputs of two shapes, neither the export's example (a `torch.export` program of the strip reader: batches
    of 2 or more, of the training strips' width, as torch.export unrolls the LSTM over time)."""
    g = torch.Generator().manual_seed(0)
    if task == "resnet":
        return [torch.rand(n, 1, 28, 28, generator=g) for n in (1, 5)]
    if task == "transformer":
        return [torch.randint(0, model.net.config.vocab_size, (n, t), generator=g) for n, t in ((1, 3), (4, 11))]
    if program:
        return [torch.rand(n, 1, 28, 148, generator=g) for n in (3, 5)]
    return [torch.rand(n, 1, 28, w, generator=g) for n, w in ((1, 60), (3, 148))]


def reference(task: str, model, x: torch.Tensor) -> torch.Tensor:
    """What the task's own code computes for raw input x."""
    with torch.no_grad():
        if task == "resnet":
            return model.evaluate((x - 0.1307) / 0.3081).exp()
        if task == "transformer":
            return model.net(x)
        return model((x - 0.1307) / 0.3081)


@pytest.mark.parametrize("task", list(TASKS))
def test_onnx_export_matches_pytorch(task, checkpoints, tmp_path, capsys):
    main, model_class, _ = TASKS[task]
    out = tmp_path / f"{task}.onnx"
    main(["export", f"--ckpt_path={checkpoints[task]}", "--format=onnx", f"--output={out}"])
    assert f"wrote {out}" in capsys.readouterr().out
    model = model_class.load_from_checkpoint(checkpoints[task], map_location="cpu").eval()
    session = ort.InferenceSession(str(out))
    name = session.get_inputs()[0].name
    for x in inputs(task, model):
        (got,) = session.run(None, {name: x.numpy()})
        np.testing.assert_allclose(got, reference(task, model, x).numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("task", list(TASKS))
def test_torch_export_program_matches_pytorch(task, checkpoints, tmp_path):
    main, model_class, _ = TASKS[task]
    main(["export", f"--ckpt_path={checkpoints[task]}", "--format=exported"])
    program = torch.export.load(checkpoints[task].with_suffix(".pt2"))
    model = model_class.load_from_checkpoint(checkpoints[task], map_location="cpu").eval()
    for x in inputs(task, model, program=True):
        torch.testing.assert_close(program.module()(x), reference(task, model, x), atol=1e-4, rtol=1e-4)


def test_export_of_a_missing_checkpoint_or_a_gan_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resnet_main(["export", f"--ckpt_path={tmp_path / 'none.ckpt'}"])
    from tasks.gan import cli_main as gan_main

    with pytest.raises(ValueError, match=r"tasks\.gan has no export"):
        gan_main(["export", f"--ckpt_path={tmp_path / 'none.ckpt'}"])
