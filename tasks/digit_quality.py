"""How good are a GAN's digits: digit-FID, recognisability, class entropy and label accuracy.

`DigitQuality` is a torchmetrics `Metric` that owns the frozen digit classifier (`DigitJudge`);
`GANEvaluation` is the callback that feeds it real digits and generated ones at every validation and
test, logs the scores and draws the sample grid. The GAN's LightningModule only trains, and the judge
never enters its checkpoints.

digit-FID is the Fréchet distance between the judge's penultimate features of real and generated
digits (torchmetrics' `FrechetInceptionDistance` with the judge as feature extractor). It is not
comparable with Inception FID.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchvision.utils import make_grid

from tasks.digit_judge import MEAN, STD, DigitJudge, load_digit_classifier
from tasks.outputs import run_dir, save_png


class DigitQuality(Metric):
    """digit-FID of generated against real digits, and the judge's view of the generated ones.

    `update(images, real=True)` adds real digits, `update(images, real=False, labels=y)` generated ones
    (in [0, 1]; `labels` are the requested classes of a conditional GAN). `compute()` returns
    digit_fid, recognisable (share with judge confidence >= `confidence`), class_entropy (of the judge's
    label histogram; ln 10 = 2.303 is uniform, mode collapse lowers it) and, with labels, label_acc.
    """

    full_state_update = False

    def __init__(self, judge: DigitJudge, confidence: float = 0.9, num_classes: int = 10) -> None:
        super().__init__()
        self.judge, self.confidence = judge, confidence
        self.fid = FrechetInceptionDistance(feature=judge, normalize=True)
        for name in ("generated", "confident", "labelled", "correct"):
            self.add_state(name, torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("histogram", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, images: torch.Tensor, real: bool, labels: torch.Tensor | None = None) -> None:
        self.fid.update(images, real=real)
        if real:
            return
        conf, pred = self.judge.logits(images).softmax(-1).max(-1)
        self.generated += len(images)
        self.confident += (conf >= self.confidence).sum()
        self.histogram += torch.bincount(pred, minlength=len(self.histogram))
        if labels is not None:
            self.labelled += len(labels)
            self.correct += (pred == labels).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        hist = self.histogram.float() / self.generated.clamp(min=1)
        p = hist[hist > 0]
        out = {
            "digit_fid": self.fid.compute(),
            "recognisable": self.confident.float() / self.generated.clamp(min=1),
            "class_entropy": -(p * p.log()).sum(),
        }
        if self.labelled:
            out["label_acc"] = self.correct.float() / self.labelled
        return out

    def reset(self) -> None:
        super().reset()
        self.fid.reset()


class GANEvaluation(Callback):
    """Score the GAN's EMA generator at every validation and test, and draw a grid of its digits.

    Logs `<split>/digit_fid`, `/recognisable`, `/class_entropy`, `/label_acc` (conditional) and, after
    test, `test/digit_fid_floor` (real train digits against real test digits: the best a generator can
    reach). The grid (fixed noise, one class per column when conditional) goes to `samples.png` and
    `samples/epochNNN.png` in the run folder.

    Args:
        classifier_path: digit classifier (a `tasks.resnet` .ckpt or a state dict .pt); None: the cached
            one under `$XDG_CACHE_HOME/residual_kit/`, trained once (~2 min, with a progress bar) if absent.
        samples: generated digits per evaluation (split across processes).
        confidence: the judge's confidence a digit needs to count as recognisable.
    """

    def __init__(self, classifier_path: str | None = None, samples: int = 1000, confidence: float = 0.9) -> None:
        self.classifier_path, self.samples, self.confidence = classifier_path, samples, confidence
        self.quality: DigitQuality | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.quality is None and stage in ("fit", "validate", "test"):
            data = trainer.datamodule
            judge = DigitJudge(load_digit_classifier(self.classifier_path, data.hparams.source, data.hparams.root))
            self.quality = DigitQuality(judge, self.confidence)
        if self.quality is not None:
            self.quality.to(pl_module.device)

    def _real(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, _ = batch
        self.quality.update((images * STD + MEAN).clamp(0, 1), real=True)

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._real(batch)

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._real(batch)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, "test")

    @torch.no_grad()
    def _finish(self, trainer: pl.Trainer, gan: pl.LightningModule, split: str) -> None:
        if trainer.sanity_checking:
            self.quality.reset()
            return
        n = math.ceil(self.samples / trainer.world_size)
        for chunk in torch.arange(n, device=gan.device).split(250):
            y = gan.labels(len(chunk))
            self.quality.update(gan.sample(gan.noise(len(chunk)), y), real=False, labels=y)
        metrics = {f"{split}/{k}": v.item() for k, v in self.quality.compute().items()}
        self.quality.reset()
        digits = getattr(trainer.datamodule, "digits", None)
        if split == "test" and digits is not None:
            metrics["test/digit_fid_floor"] = self.real_floor(digits.train_set.images, digits.test_set.images)
        gan.log_dict(metrics, prog_bar=True, sync_dist=True)
        if trainer.is_global_zero:
            z = torch.randn(100, gan.generator.z_dim, generator=torch.Generator().manual_seed(0)).to(gan.device)
            grid = make_grid(gan.sample(z, gan.labels(100)), nrow=10, padding=2, pad_value=0.5)
            save_png(grid, run_dir(trainer) / "samples" / f"epoch{trainer.current_epoch:03d}.png")
            save_png(grid, run_dir(trainer) / "samples.png")

    @torch.no_grad()
    def real_floor(self, train: torch.Tensor, test: torch.Tensor) -> float:
        """digit-FID between real train digits and real test digits (uint8 images)."""
        fid = FrechetInceptionDistance(feature=self.quality.judge, normalize=True).to(self.quality.device)
        for images, real in ((train[: len(test)], True), (test, False)):
            for chunk in images.split(256):
                fid.update(chunk.to(self.quality.device).float() / 255, real=real)
        return fid.compute().item()


__all__ = ["DigitQuality", "GANEvaluation"]
