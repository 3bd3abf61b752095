"""`python -m tasks.<name> export --ckpt_path <ckpt> --format onnx|exported`: a trained network for deployment.

The file takes raw input (pixels in [0, 1], or token ids): the normalisation the task trained with is inside it,
and the batch (and a sequence's length or a strip's width) may vary. Each task's LightningModule says what it
deploys (`deployable()`); a lazily sized layer is materialised by one forward pass before the export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from tasks.core.checkpoints import check_checkpoint, check_hyperparameters

Format = Literal["onnx", "exported"]
SUFFIX = {"onnx": ".onnx", "exported": ".pt2"}


@dataclass
class Deployable:
    """What a task deploys: the network with its input handling, an example input, the sizes that may vary
    (`torch.export` dynamic shapes, one dict per input), and the names of inputs and outputs."""

    module: nn.Module
    example: tuple[torch.Tensor, ...]
    dynamic_shapes: tuple[dict[int, Any], ...]
    input_names: list[str] = field(default_factory=lambda: ["input"])
    output_names: list[str] = field(default_factory=lambda: ["output"])


class Normalised(nn.Module):
    """y = f((x - mean) / std) per channel, then `then` (softmax or nothing): raw pixels in, the task's answer out."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float], then: nn.Module | None = None) -> None:
        super().__init__()
        self.net, self.then = net, then or nn.Identity()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.then(self.net((x - self.mean) / self.std))


def export_network(deployable: Deployable, format: Format, out: Path) -> Path:
    """Write `deployable` as an ONNX model or a `torch.export` program (.pt2) to `out`."""
    module = deployable.module.eval()
    with torch.no_grad():
        module(*deployable.example)  # sizes a lazily sized layer, so the exported graph has its weights
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "exported":
        program = torch.export.export(module, deployable.example, dynamic_shapes=deployable.dynamic_shapes)
        torch.export.save(program, out)
    else:
        torch.onnx.export(
            module,
            deployable.example,
            out,
            dynamo=True,
            dynamic_shapes=deployable.dynamic_shapes,
            input_names=deployable.input_names,
            output_names=deployable.output_names,
            external_data=False,
        )
    return out


def export(model_class: type, task: str, ckpt_path: str, format: Format = "onnx", output: str | None = None) -> Path:
    """Export the network of a task's checkpoint; the file's path (default: beside the checkpoint, its name with
    .onnx or .pt2)."""
    if format not in SUFFIX:
        raise ValueError(f"--format {format!r} is not one of {list(SUFFIX)}")
    missing = [m for m in ("onnx", "onnxscript") if format == "onnx" and find_spec(m) is None]
    if missing:
        raise ValueError(f"--format onnx needs {' and '.join(missing)}: pip install 'residual-kit[export]'")
    if not hasattr(model_class, "deployable"):
        raise ValueError(
            f"tasks.{task} has no export: its networks are used from Python (`create_model(..., checkpoint=...)`)"
        )
    check_hyperparameters(ckpt_path, model_class, task)
    model = model_class.load_from_checkpoint(ckpt_path, map_location="cpu")
    check_checkpoint(ckpt_path, model, task)
    out = Path(output) if output else Path(ckpt_path).with_suffix(SUFFIX[format])
    path = export_network(model.deployable(), format, out)
    print(f"wrote {path}")
    return path


def export_cli(model_class: type, task: str, args: list[str]) -> Path:
    """The `export` subcommand's own parser (Lightning's Trainer has no export to run)."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog=f"python -m tasks.{task} export", description=__doc__.splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options (--print_config)")
    parser.add_argument("--ckpt_path", type=str, required=True, help="a checkpoint that `fit` wrote")
    parser.add_argument("--format", type=Format, default="onnx", help="onnx, or exported (torch.export, .pt2)")
    parser.add_argument("--output", type=str | None, default=None, help="the file to write")
    config = parser.parse_args(args)
    return export(model_class, task, config.ckpt_path, config.format, config.output)


__all__ = ["Deployable", "Normalised", "export", "export_cli", "export_network"]
