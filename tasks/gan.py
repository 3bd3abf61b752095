"""A residual-block GAN that generates handwritten digits: `python -m tasks.gan fit`.

python -m tasks.gan fit                                   # ResNet G and D, hinge loss, class-conditional
python -m tasks.gan fit --model.arch=dcgan                # the plain DCGAN baseline, same budget
python -m tasks.gan fit --config configs/gan_unconditional.yaml   # no labels
python -m tasks.gan predict --ckpt_path <ckpt> --data.num_samples=64 --predictions.output_dir samples/

Quality is "digit-FID": the Fréchet distance between the penultimate features of a digit classifier
(a ResNet from tasks.resnet) on real and generated digits. It is not comparable with Inception FID.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.cli import LightningArgumentParser
from pytorch_lightning.utilities import rank_zero_info
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.image.fid import FrechetInceptionDistance
from torchvision.utils import make_grid, save_image

from residual_kit.models.gan import DISCRIMINATORS, GENERATORS
from tasks.common import TaskCLI, atomic_path, output_dir, run, trainer_defaults
from tasks.data import ImageDataModule
from tasks.data.images import DATASETS, Source

MEAN, STD = DATASETS["mnist"].mean[0], DATASETS["mnist"].std[0]
DEFAULT_CLASSIFIER = Path("~/.cache/residual_kit/digit_classifier_resnet20.pt").expanduser()


# --- the frozen judge: a digit classifier ---------------------------------------------------------


class DigitFeatures(nn.Module):
    """A frozen digit ResNet: images in [0, 1] -> penultimate features (for digit-FID) or logits.

    It stays in eval mode whatever `train()` is called with: a LightningModule's `.train()` reaches
    every submodule, and a judge whose BN statistics move would change the metric it computes.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.net = classifier
        self.num_features = classifier.num_features
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> DigitFeatures:
        return super().train(False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - MEAN) / STD
        net = self.net
        return net.head[:-1](net.stages(net.stem(x)))  # (B, num_features): pooled, before the classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.head[-1](self.features(images))


def load_digit_classifier(path: str | Path | None, source: Source = "auto", root: str = "data") -> nn.Module:
    """The judge's weights: a tasks.resnet checkpoint (.ckpt), a cached state dict (.pt), or train one and cache it."""
    from residual_kit.models import create_model
    from tasks.resnet import ImageClassifier

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"digit classifier {path} does not exist: train one with `python -m tasks.resnet fit` and pass its "
                f"checkpoint (runs/resnet/version_N/checkpoints/*.ckpt), or leave classifier_path unset"
            )
        if path.suffix == ".ckpt":
            return ImageClassifier.load_from_checkpoint(path, map_location="cpu").net
        net = create_model("resnet20", in_channels=1, num_classes=10)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net
    if DEFAULT_CLASSIFIER.is_file():
        return load_digit_classifier(DEFAULT_CLASSIFIER)
    rank_zero_info(
        f"digit-FID: no classifier given; training a ResNet-20 on MNIST once, cached at {DEFAULT_CLASSIFIER}"
    )
    model = ImageClassifier("resnet20", lr=0.1, schedule="onecycle")
    data = ImageDataModule("mnist", source=source, root=root)
    trainer = pl.Trainer(max_epochs=6, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=data)
    acc = trainer.test(model, datamodule=data, verbose=False)[0]["test/acc"]
    rank_zero_info(f"digit classifier: {acc:.2%} test accuracy")
    tmp, final = atomic_path(DEFAULT_CLASSIFIER)
    torch.save(model.net.state_dict(), tmp)
    tmp.replace(final)
    return model.net


def ema_with_warmup(decay: float) -> Any:
    """EMA whose decay ramps up as min(decay, (1 + n) / (10 + n)) over n updates (TF's num_updates rule).

    A fixed 0.999 from the first step keeps ~40% of the random initial weights after 1,000 steps, which
    is the whole of a CPU-sized run; the warm-up lets the average follow the generator early on.
    """

    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        return d * averaged + (1 - d) * current

    return avg


# --- the GAN ---------------------------------------------------------------------------------------


class DigitGAN(pl.LightningModule):
    """Generator and discriminator trained by manual optimisation; EMA generator for evaluation and sampling.

    Args:
        arch: "resnet" (residual blocks, spectral norm in D) or "dcgan" (the plain baseline).
        num_classes: 10 (default) for class-conditional digits (class embedding and CBN in G, projection D);
            0 for unconditional, best trained at lr_g 8e-4 (configs/gan_unconditional.yaml).
        z_dim: noise dimensions.
        width: channels of G and D.
        loss: "hinge" or "wgan-gp".
        gp_weight: gradient-penalty weight (wgan-gp only).
        n_dis: discriminator steps per generator step.
        lr_g: generator Adam learning rate. SNGAN's 2e-4: a conditional G that learns as fast as D learns
            the classes ignores z and collapses to one junk image per class.
        lr_d: discriminator Adam learning rate; 4x SNGAN's 2e-4, which won on a few-thousand-step CPU budget.
        betas: Adam betas (SNGAN: 0.0, 0.9).
        ema_decay: decay of the generator's weight average, reached after a warm-up (min(decay, (1+n)/(10+n))).
        eval_samples: generated digits per evaluation (digit-FID and recognisability).
        classifier_path: digit classifier for digit-FID (tasks.resnet .ckpt or a state dict .pt); None: train once.
        confidence: the classifier confidence a digit needs to count as recognisable.
        aux_weight: conditional only: weight of AC-GAN's class loss (Odena et al. 2017), CE(V h(real), y)
            for D and CE(V h(G(z, y)), y) for G, beside the projection term; 0 turns it off.
        channels_last: keep G and D in NHWC memory layout: 1.13x faster steps on a 2-core CPU (oneDNN),
            measured by benchmarks/gan_step.py; not yet measured on a GPU.
    """

    def __init__(
        self,
        arch: Literal["resnet", "dcgan"] = "resnet",
        num_classes: int = 10,
        z_dim: int = 128,
        width: int = 32,
        loss: Literal["hinge", "wgan-gp"] = "hinge",
        gp_weight: float = 10.0,
        n_dis: int = 1,
        lr_g: float = 2e-4,
        lr_d: float = 8e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        ema_decay: float = 0.999,
        eval_samples: int = 1000,
        classifier_path: str | None = None,
        confidence: float = 0.9,
        aux_weight: float = 0.0,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if aux_weight and not num_classes:
            raise ValueError("aux_weight needs class labels: set num_classes=10 as well, or aux_weight=0")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = GENERATORS[arch](z_dim, width, num_classes)
        self.discriminator = DISCRIMINATORS[arch](width, num_classes)
        if channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.ema = AveragedModel(self.generator, avg_fn=ema_with_warmup(ema_decay), use_buffers=True)
        self.judge: DigitFeatures | None = None
        self.fid: FrechetInceptionDistance | None = None
        self.register_buffer("fixed_z", torch.randn(100, z_dim, generator=torch.Generator().manual_seed(0)))

    # --- pieces ---
    def setup(self, stage: str) -> None:
        if self.judge is None and stage in ("fit", "validate", "test"):
            self.judge = DigitFeatures(load_digit_classifier(self.hparams.classifier_path)).to(self.device)
            self.fid = FrechetInceptionDistance(feature=self.judge, normalize=True).to(self.device)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The judge is not part of the GAN: keep it (and the metric's states) out of checkpoints."""
        return {k: v for k, v in super().state_dict(*args, **kwargs).items() if not k.startswith(("judge.", "fid."))}

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        judge = {k: v for k, v in super().state_dict().items() if k.startswith(("judge.", "fid."))}
        return super().load_state_dict({**judge, **state_dict}, strict=strict, assign=assign)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.hparams.z_dim, device=self.device, generator=generator)

    def labels(self, n: int) -> torch.Tensor | None:
        k = self.hparams.num_classes
        return torch.arange(n, device=self.device) % k if k else None

    @torch.no_grad()
    def sample(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Digits in [0, 1] from the EMA generator, (B, 1, 28, 28)."""
        self.ema.eval()
        return (self.ema(z, y) + 1) / 2

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        both, logits = self.discriminator.score_and_logits(
            torch.cat([real, fake]), None if y is None else torch.cat([y, y])
        )
        d_real, d_fake = both.chunk(2)  # one pass over both halves: D has no batch statistics
        aux = self.aux_loss(logits[: len(real)], y) if logits is not None else 0.0  # real digits only
        if self.hparams.loss == "hinge":
            return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean() + aux
        eps = torch.rand(real.shape[0], 1, 1, 1, device=self.device)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(mix, y).sum(), mix, create_graph=True)
        penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return d_fake.mean() - d_real.mean() + self.hparams.gp_weight * penalty + aux

    def g_loss(self, fake: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        score, logits = self.discriminator.score_and_logits(fake, y)
        return -score.mean() + (self.aux_loss(logits, y) if logits is not None else 0.0)

    def aux_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor | float:
        w = self.hparams.aux_weight
        return w * F.cross_entropy(logits, y) if w else 0.0

    # --- training ---
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, y = batch
        real = (images * STD + MEAN) * 2 - 1  # the data module's normalisation -> [-1, 1]
        y = y if self.hparams.num_classes else None
        opt_g, opt_d = self.optimizers()
        b = real.shape[0]

        with torch.no_grad():
            fake = self.generator(self.noise(b), y)
        d_loss = self.d_loss(real, fake, y)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.log("train/d_loss", d_loss, prog_bar=True)

        if (batch_idx + 1) % self.hparams.n_dis == 0:
            g_loss = self.g_loss(self.generator(self.noise(b), y), y)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()
            self.ema.update_parameters(self.generator)
            self.log("train/g_loss", g_loss, prog_bar=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        h = self.hparams
        return [
            torch.optim.Adam(self.generator.parameters(), lr=h.lr_g, betas=h.betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=h.lr_d, betas=h.betas),
        ]

    # --- evaluation: digit-FID, recognisability, class entropy, conditional accuracy ---
    def on_validation_epoch_start(self) -> None:
        self._start_eval()

    def on_test_epoch_start(self) -> None:
        self._start_eval()

    def _start_eval(self) -> None:
        self.fid.reset()
        self._generated = 0

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, _ = batch
        real = (images * STD + MEAN).clamp(0, 1)
        self.fid.update(real, real=True)
        n = min(len(real), self.hparams.eval_samples - self._generated)
        if n > 0:
            self.fid.update(self.sample(self.noise(n), self.labels(n)), real=False)
            self._generated += n

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def on_validation_epoch_end(self) -> None:
        self._finish_eval("val")

    def on_test_epoch_end(self) -> None:
        self._finish_eval("test")

    @torch.no_grad()
    def judge_samples(self, n: int) -> dict[str, float]:
        """Recognisability, class-histogram entropy and (conditional) accuracy on requested labels of n samples."""
        gen = torch.Generator(device=self.device).manual_seed(1234)
        y = self.labels(n)
        probs = self.judge.logits(self.sample(self.noise(n, gen), y)).softmax(-1)
        conf, pred = probs.max(-1)
        hist = torch.bincount(pred, minlength=10).float() / n
        out = {
            "recognisable": (conf >= self.hparams.confidence).float().mean().item(),
            "class_entropy": -(hist[hist > 0] * hist[hist > 0].log()).sum().item(),  # ln 10 = 2.303 is uniform
        }
        if y is not None:
            out["label_acc"] = (pred == y).float().mean().item()
        return out

    def _finish_eval(self, split: str) -> None:
        if self.trainer.sanity_checking:
            return
        metrics = {f"{split}/digit_fid": self.fid.compute().item()}
        metrics.update({f"{split}/{k}": v for k, v in self.judge_samples(self.hparams.eval_samples).items()})
        digits = getattr(self.trainer.datamodule, "digits", None)
        if split == "test" and digits is not None:  # the floor: real train digits against real test digits
            test = digits.test_set.images.float() / 255
            metrics["test/digit_fid_floor"] = self.real_floor(digits.train_set.images[: len(test)].float() / 255, test)
        self.log_dict(metrics, prog_bar=True, sync_dist=True)
        if self.trainer.is_global_zero:
            grid = make_grid(self.sample(self.fixed_z, self.labels(100)), nrow=10, padding=2, pad_value=0.5)
            path = output_dir(self.trainer) / "samples" / f"epoch{self.current_epoch:03d}.png"
            save_png(grid, path)
            save_png(grid, output_dir(self.trainer) / "samples.png")
            experiment = getattr(self.logger, "experiment", None)
            if hasattr(experiment, "add_image"):  # TensorBoard
                experiment.add_image("samples", grid, self.global_step)

    @torch.no_grad()
    def real_floor(self, train: torch.Tensor, test: torch.Tensor) -> float:
        """digit-FID between two sets of real digits in [0, 1]: the best a generator can hope for."""
        fid = FrechetInceptionDistance(feature=self.judge, normalize=True).to(self.device)
        for chunk in train.split(256):
            fid.update(chunk.to(self.device), real=True)
        for chunk in test.split(256):
            fid.update(chunk.to(self.device), real=False)
        return fid.compute().item()

    # --- predict: samples ---
    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        z, y = batch
        return self.sample(z, y if self.hparams.num_classes else None).cpu()


def save_png(images: torch.Tensor, path: Path) -> Path:
    """torchvision's save_image through a temporary file: no torn PNG if the run is killed."""
    tmp, path = atomic_path(path)
    try:
        save_image(images, tmp, format="png")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class GANDataModule(pl.LightningDataModule):
    """MNIST digits (no augmentation) for training and evaluation; seeded noise for `predict`.

    Args:
        source: "auto", "folder", "download" or "embedded".
        root: folder that holds (or will hold) MNIST.
        batch_size: digits per batch; 16, as more and smaller steps beat fewer large ones at equal time.
        num_samples: digits that `predict` generates.
        predict_seed: seed of the noise that `predict` uses.
    """

    def __init__(
        self,
        source: Source = "auto",
        root: str = "data",
        batch_size: int = 16,
        num_samples: int = 64,
        predict_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.num_samples, self.predict_seed = num_samples, predict_seed
        self._digits: ImageDataModule | None = None

    @property
    def digits(self) -> ImageDataModule:
        # built here, not in __init__: Lightning's save_hyperparameters would read this __init__'s arguments
        if self._digits is None:
            h = self.hparams
            self._digits = ImageDataModule("mnist", h.source, h.root, h.batch_size, augment=False)
        return self._digits

    def prepare_data(self) -> None:
        self.digits.prepare_data()

    def setup(self, stage: str) -> None:
        if stage != "predict":
            self.digits.setup(stage)

    def train_dataloader(self) -> DataLoader:
        return self.digits.train_dataloader()

    def val_dataloader(self) -> DataLoader:
        return self.digits.val_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.digits.test_dataloader()

    def predict_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.predict_seed)
        z = torch.randn(self.num_samples, self.trainer.lightning_module.hparams.z_dim, generator=g)
        return DataLoader(TensorDataset(z, torch.arange(self.num_samples) % 10), batch_size=self.hparams.batch_size)


class SampleWriter(BasePredictionWriter):
    """Write the generated digits as one grid, as single PNGs, and a latent interpolation grid.

    Args:
        output_dir: folder for grid.png, interpolation.png and digits/NNNN.png.
        interpolation_rows: pairs of latents to interpolate between (10 steps each).
    """

    def __init__(self, output_dir: str = "samples", interpolation_rows: int = 8) -> None:
        super().__init__(write_interval="epoch")
        self.output_dir, self.interpolation_rows = Path(output_dir), interpolation_rows

    def write_on_epoch_end(self, trainer: pl.Trainer, pl_module: Any, predictions: Any, batch_indices: Any) -> None:
        images = torch.cat(predictions)
        save_png(make_grid(images, nrow=math.ceil(math.sqrt(len(images))), padding=2), self.output_dir / "grid.png")
        for i, image in enumerate(images):
            save_png(image, self.output_dir / "digits" / f"{i:04d}.png")
        g = torch.Generator().manual_seed(trainer.datamodule.predict_seed + 1)
        ends = torch.randn(2, self.interpolation_rows, pl_module.hparams.z_dim, generator=g).to(pl_module.device)
        t = torch.linspace(0, 1, 10, device=pl_module.device)[None, :, None]
        z = (ends[0][:, None] * (1 - t) + ends[1][:, None] * t).flatten(0, 1)  # (rows * 10, z_dim)
        y = (torch.arange(len(z), device=z.device) // 10) % 10 if pl_module.hparams.num_classes else None
        save_png(make_grid(pl_module.sample(z, y), nrow=10, padding=2), self.output_dir / "interpolation.png")
        print(f"wrote {len(images)} digits to {self.output_dir}/ (grid.png, digits/, interpolation.png)")


class GANCLI(TaskCLI):
    """Checkpoints on validation digit-FID (lower is better), and the sample writer for `predict`."""

    task = "gan"
    ddp_find_unused = True  # D and G step in turn: each backward leaves the other network's weights unused
    monitor, mode, checkpoint_filename = "val/digit_fid", "min", "best-epoch{epoch:03d}-fid{val/digit_fid:.2f}"

    def add_task_arguments(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(SampleWriter, "predictions")


def cli_main(args: list[str] | None = None) -> GANCLI:
    defaults = trainer_defaults("gan", max_epochs=16)
    defaults["check_val_every_n_epoch"] = 4  # the last epoch is evaluated, so the best checkpoint can be it
    return GANCLI(
        DigitGAN,
        GANDataModule,
        trainer_defaults=defaults,
        seed_everything_default=42,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


if __name__ == "__main__":
    run(cli_main)
