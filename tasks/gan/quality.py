"""How good are a GAN's digits: digit-FID, recognisability, class entropy and label accuracy.

`DigitQuality` is a torchmetrics `Metric` that owns the frozen digit classifier (`DigitClassifier`);
`GANEvaluation` is the callback that feeds it real digits and generated ones at every validation and
test, logs the scores and draws the sample grid. The GAN's LightningModule only trains, and the classifier
never enters its checkpoints.

digit-FID is the Fréchet distance between the classifier's penultimate features of real and generated
digits (torchmetrics' `FrechetInceptionDistance` with the classifier as feature extractor). It is not
comparable with Inception FID.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.utilities import dim_zero_cat
from torchvision.utils import make_grid

from tasks.core.outputs import run_dir, save_png
from tasks.data import ImageDataModule
from tasks.data.sources import Source
from tasks.gan.classifier import MEAN, STD, DigitClassifier, load_digit_classifier
from tasks.gan.conditioning import Classes


def within_class_spread(features: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """(classes,) mean squared distance of each class's features to their centroid: E ||f - mean_c(f)||^2."""
    spreads = []
    for c in range(classes):
        f = features[labels == c]
        spreads.append(((f - f.mean(0)) ** 2).sum(1).mean() if len(f) > 1 else features.new_tensor(float("nan")))
    return torch.stack(spreads)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of feature sets (N, D) and (M, D).

    Each set's manifold is the union of balls around its points with radius the distance to the k-th
    nearest neighbour in the same set. Precision: the share of fake points inside the real manifold
    (legible); recall: the share of real points inside the fake manifold (varied).
    """

    def radii(x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values  # k+1: the nearest is the point itself

    inside = torch.cdist(fake, real) <= radii(real)[None, :]  # (M, N): fake j within real ball i
    covered = torch.cdist(real, fake) <= radii(fake)[None, :]  # (N, M)
    return inside.any(1).float().mean(), covered.any(1).float().mean()


class DigitQuality(Metric):
    """digit-FID of generated against real digits, and the classifier's view of the generated ones.

    `update(images, real=True, labels=y)` adds real digits, `update(images, real=False, labels=y)` generated
    ones (in [0, 1]; `labels` are the requested classes of a conditional GAN). `compute()` returns
    digit_fid; recognisable (share with classifier confidence >= `confidence`); class_entropy (of the classifier's
    label histogram; ln 10 = 2.303 is uniform, mode collapse lowers it); with labels, label_acc;
    precision and recall (Kynkäänniemi et al. 2019, k-NN in the classifier's features: legible and varied);
    variety and variety_min, the within-class spread of generated digits over that of real ones, mean
    and lowest over classes (1.0: as varied as handwriting; classes of generated digits are the
    requested ones, or the classifier's reading when unconditional). The real spread comes from the digits
    given to `set_reference` (the training digits, hundreds per class) when set, else from the real
    digits of `update`: a few held-out digits a class are too few to set the lowest class.
    """

    full_state_update = False

    def __init__(self, classifier: DigitClassifier, confidence: float = 0.9, num_classes: int = 10) -> None:
        super().__init__()
        self.classifier, self.confidence = classifier, confidence
        self.fid = FrechetInceptionDistance(feature=classifier, normalize=True)
        for name in ("generated", "confident", "labelled", "correct"):
            self.add_state(name, torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("histogram", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        for name in ("real_features", "real_classes", "fake_features", "fake_classes"):
            self.add_state(name, [], dist_reduce_fx="cat")
        self.reference_spread: torch.Tensor | None = None

    @torch.no_grad()
    def set_reference(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Real digits (N, 1, 28, 28) in [0, 1] and their labels whose within-class spread `variety` divides by."""
        features = torch.cat([self.classifier(chunk) for chunk in images.split(500)])
        self.reference_spread = within_class_spread(features, labels, len(self.histogram))

    def update(self, images: torch.Tensor, real: bool, labels: torch.Tensor | None = None) -> None:
        self.fid.update(images, real=real)
        features = self.classifier(images)
        if real:
            if labels is not None:
                self.real_features.append(features)
                self.real_classes.append(labels)
            return
        conf, pred = self.classifier.classify(features).softmax(-1).max(-1)
        self.fake_features.append(features)
        self.fake_classes.append(labels if labels is not None else pred)
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
        if _filled(self.real_features) and _filled(self.fake_features):
            real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
            out["precision"], out["recall"] = precision_recall(real, fake)
            classes = len(self.histogram)
            spread = self.reference_spread
            if spread is None:
                spread = within_class_spread(real, dim_zero_cat(self.real_classes), classes)
            ratio = within_class_spread(fake, dim_zero_cat(self.fake_classes), classes) / spread.to(fake.device)
            out["variety"], out["variety_min"] = ratio.nanmean(), ratio.nan_to_num(nan=float("inf")).min()
        return out

    def reset(self) -> None:
        super().reset()
        self.fid.reset()


def _filled(state: list[torch.Tensor] | torch.Tensor) -> bool:
    """A "cat" state is a list of tensors, or one tensor once synced across processes."""
    return len(state) > 0 if isinstance(state, list) else state.numel() > 0


class GANEvaluation(Callback):
    """Score the GAN's EMA generator at every validation and test, and draw a grid of its digits.

    Logs `<split>/digit_fid`, `/recognisable`, `/class_entropy`, `/label_acc` (conditional), `/precision`,
    `/recall`, `/variety`, `/variety_min` (see `DigitQuality`), `/legible_fid` (the checkpoint rule:
    digit-FID where at least `legible` of the digits are recognisable, plus 1000 per unit of shortfall
    below it, so a legible checkpoint always beats an illegible one and, among those that are not,
    the more legible wins) and, after test, `test/digit_fid_floor` (real train digits against real
    test digits: the best a generator can
    reach). The grid (fixed noise, one class per column when conditional) goes to `samples.png` and
    `samples/epochNNN.png` in the run folder; after test, a conditional GAN's `variety.png` shows for
    two classes 32 generated digits (left) beside 32 real test digits (right).

    Args:
        classifier_path: digit classifier (a `tasks.resnet` .ckpt or a state dict .pt); None: the digit ResNet-20
            that ships with residual-kit, the same on every machine.
        samples: generated digits per validation (split across processes).
        test_samples: generated digits per test: 500 a class, as the lowest class's variety from 100 a class
            varies between draws of the noise alone (docs/history.md).
        confidence: the classifier's confidence a digit needs to count as recognisable.
        legible: the share of recognisable digits a checkpoint needs before its digit-FID counts: 0.95, the
            share the GAN's default aims at (at 0.9 a less legible epoch with a lower digit-FID could win).
        source: where the real digits come from (linked from `--data.source`): their training split sets the
            variety reference and, with the test split, the digit-FID floor.
        root: the data folder (linked from `--data.root`).
    """

    def __init__(
        self,
        classifier_path: str | None = None,
        samples: int = 1000,
        test_samples: int = 5000,
        confidence: float = 0.9,
        legible: float = 0.95,
        source: Source | None = None,
        root: str = "data",
    ) -> None:
        self.classifier_path, self.confidence, self.legible = classifier_path, confidence, legible
        self.samples, self.test_samples = samples, test_samples
        self.digits = ImageDataModule("mnist", source, root, augment=False)
        self.quality: DigitQuality | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.quality is None and stage in ("fit", "validate", "test"):
            classifier = DigitClassifier(load_digit_classifier(self.classifier_path))
            self.quality = DigitQuality(classifier, self.confidence)
            self.digits.setup("fit")  # variety against the training digits' spread (see DigitQuality)
            train = self.digits.train_set  # the first 5,000: the embedded set's 4,000, a sample of full MNIST's
            self.quality.set_reference(train.images[:5000].float() / 255, train.labels[:5000])
        if self.quality is not None:
            self.quality.to(pl_module.device)

    def _real(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, labels = batch
        self.quality.update((images * STD + MEAN).clamp(0, 1), real=True, labels=labels)

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
        n = math.ceil((self.test_samples if split == "test" else self.samples) / trainer.world_size)
        for chunk in torch.arange(n, device=gan.device).split(250):
            y = gan.asked(len(chunk))
            self.quality.update(gan.sample(gan.noise(len(chunk)), y), real=False, labels=y)
        metrics = {f"{split}/{k}": v.item() for k, v in self.quality.compute().items()}
        self.quality.reset()
        shortfall = max(0.0, self.legible - metrics[f"{split}/recognisable"])
        metrics[f"{split}/legible_fid"] = metrics[f"{split}/digit_fid"] + 1000.0 * shortfall
        if split == "test":
            self.digits.setup("test")
            metrics["test/digit_fid_floor"] = self.real_floor(self.digits.train_set.images, self.digits.test_set.images)
        gan.log_dict(metrics, prog_bar=True, sync_dist=True)
        if split == "test" and isinstance(gan.condition, Classes) and trainer.is_global_zero:
            save_png(self.variety_picture(gan, self.digits.test_set), run_dir(trainer) / "variety.png")
        if trainer.is_global_zero:
            z = torch.randn(100, gan.generator.z_dim, generator=torch.Generator().manual_seed(0)).to(gan.device)
            grid = make_grid(gan.sample(z, gan.asked(100)), nrow=10, padding=2, pad_value=0.5)
            save_png(grid, run_dir(trainer) / "samples" / f"epoch{trainer.current_epoch:03d}.png")
            save_png(grid, run_dir(trainer) / "samples.png")

    @torch.no_grad()
    def variety_picture(self, gan: pl.LightningModule, real: Any, classes: tuple[int, ...] = (1, 8)) -> torch.Tensor:
        """One row per class: 32 generated digits (4 x 8, fixed noise) beside 32 real test digits of it."""
        rows = []
        z = torch.randn(32, gan.generator.z_dim, generator=torch.Generator().manual_seed(0)).to(gan.device)
        for c in classes:
            fake = gan.sample(z, torch.full((32,), c, device=gan.device)).cpu()
            ours = real.images[real.labels == c][:32].float() / 255  # (<=32, 1, 28, 28)
            grids = [make_grid(x, nrow=8, padding=2, pad_value=0.5) for x in (fake, ours)]
            gap = torch.ones(grids[0].shape[0], grids[0].shape[1], 12)
            rows.append(torch.cat([grids[0], gap, grids[1]], dim=2))
        width = max(r.shape[2] for r in rows)
        rows = [torch.nn.functional.pad(r, (0, width - r.shape[2]), value=1.0) for r in rows]
        return torch.cat([torch.cat([r, torch.ones(r.shape[0], 12, width)], dim=1) for r in rows], dim=1)[:, :-12]

    @torch.no_grad()
    def real_floor(self, train: torch.Tensor, test: torch.Tensor) -> float:
        """digit-FID between real train digits and real test digits (uint8 images)."""
        fid = FrechetInceptionDistance(feature=self.quality.classifier, normalize=True).to(self.quality.device)
        for images, real in ((train[: len(test)], True), (test, False)):
            for chunk in images.split(256):
                fid.update(chunk.to(self.quality.device).float() / 255, real=real)
        return fid.compute().item()


__all__ = ["DigitQuality", "GANEvaluation"]
