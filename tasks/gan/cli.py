"""`python -m tasks.gan`: the GAN's LightningCLI and its sample writer.

python -m tasks.gan fit                                   # ResNet G and D, hinge loss, class-conditional
python -m tasks.gan fit --model.net.arch=dcgan            # the plain DCGAN baseline, same budget
python -m tasks.gan fit --config configs/gan_unconditional.yaml   # no labels
python -m tasks.gan predict --ckpt_path <ckpt> --data.labels '[3, 3, 7]'   # -> <run>/samples/
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torchvision.utils import make_grid

from tasks.core.cli import TaskCLI, task_main
from tasks.core.outputs import run_dir, save_png
from tasks.data.gan_digits import GANDataModule
from tasks.gan.conditioning import Classes
from tasks.gan.module import DigitGAN
from tasks.gan.quality import GANEvaluation


class SampleWriter(BasePredictionWriter):
    """Write the generated digits as one grid, as single PNGs, and a latent interpolation grid.

    Args:
        output_dir: folder for grid.png, interpolation.png and digits/NNNN.png; default `samples/` in
            the run folder.
        interpolation_rows: pairs of latents to interpolate between (10 steps each).
        interpolation_seed: seed of the latents interpolated between.
    """

    def __init__(self, output_dir: str | None = None, interpolation_rows: int = 8, interpolation_seed: int = 1) -> None:
        super().__init__(write_interval="epoch")
        self.output_dir, self.interpolation_rows, self.interpolation_seed = (
            output_dir, interpolation_rows, interpolation_seed
        )  # fmt: skip

    def write_on_epoch_end(self, trainer: pl.Trainer, gan: Any, predictions: Any, batch_indices: Any) -> None:
        out = Path(self.output_dir) if self.output_dir else run_dir(trainer) / "samples"
        images = torch.cat(predictions)
        save_png(make_grid(images, nrow=math.ceil(math.sqrt(len(images))), padding=2), out / "grid.png")
        for i, image in enumerate(images):
            save_png(image, out / "digits" / f"{i:04d}.png")
        g = torch.Generator().manual_seed(self.interpolation_seed)
        ends = torch.randn(2, self.interpolation_rows, gan.generator.z_dim, generator=g).to(gan.device)
        t = torch.linspace(0, 1, 10, device=gan.device)[None, :, None]
        z = (ends[0][:, None] * (1 - t) + ends[1][:, None] * t).flatten(0, 1)  # (rows * 10, z_dim)
        y = (torch.arange(len(z), device=z.device) // 10) % 10 if isinstance(gan.condition, Classes) else None
        save_png(make_grid(gan.sample(z, y), nrow=10, padding=2), out / "interpolation.png")
        print(f"wrote {len(images)} digits to {out}/ (grid.png, digits/, interpolation.png)")


class GANCLI(TaskCLI):
    task, model_class, datamodule_class = "gan", DigitGAN, GANDataModule
    max_epochs = 20
    trainer_overrides = {"check_val_every_n_epoch": 4}  # the last epoch is evaluated, so the best can be it
    ddp_find_unused = True  # D and G step in turn: each backward leaves the other network's weights unused
    monitor, mode = "val/legible_fid", "min"  # digit-FID among legible checkpoints (see GANEvaluation)
    checkpoint_filename = "best-epoch{epoch:03d}-fid{val/digit_fid:.2f}-rec{val/recognisable:.3f}"
    writer = SampleWriter
    divergence_hint = "a lower --model.lr_d and --model.lr_g"

    def add_arguments_to_parser(self, parser: Any) -> None:
        super().add_arguments_to_parser(parser)
        self.add_callback_arguments(parser, GANEvaluation, "evaluation")
        parser.link_arguments("data.source", "evaluation.source")
        parser.link_arguments("data.root", "evaluation.root")


def cli_main(args: list[str] | None = None) -> Any:
    return task_main(GANCLI, args)


__all__ = ["GANCLI", "SampleWriter", "cli_main"]
