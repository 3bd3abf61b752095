"""ResNet image classification: `python -m tasks.resnet fit` trains ResNet-20 on handwritten digits.

python -m tasks.resnet fit                                   # ResNet-20 on the embedded 5k MNIST digits
python -m tasks.resnet fit --config configs/fashion_mnist_resnet20.yaml
python -m tasks.resnet test --ckpt_path runs/resnet/version_0/checkpoints/last.ckpt
python -m tasks.resnet fit --model.net.arch=resnet56 --model.net.placement=pre   # ResNet-56 v2
python -m tasks.resnet predict --ckpt_path <ckpt> --data.predict_path digits/      # -> <run>/predictions.csv
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from residual_kit.models import ResNetConfig
from residual_kit.transfer import initial_weights, load_matching
from tasks.core.cli import TaskCLI, run, task_main
from tasks.core.export import Deployable, Normalised
from tasks.core.module import NetworkCheckpoint
from tasks.core.outputs import run_dir, save_figure
from tasks.core.writers import CSVWriter
from tasks.data import ImageDataModule
from tasks.data.image_files import image_tensor
from tasks.data.sources import DATASETS


class ImageClassifier(NetworkCheckpoint, pl.LightningModule):
    """A registry ResNet trained with cross-entropy; top-1 accuracy from torchmetrics.

    Args:
        net: the network (`--model.net.arch`, `--model.net.placement`, ...; see `ResNetConfig`); its
            `num_classes` and `in_channels` are linked from the data module.
        optimizer: "sgd" (Nesterov momentum) or "adamw".
        lr: peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum (the default); He et al. used plain momentum (the CIFAR-10 configs).
        weight_decay: L2 / decoupled weight decay.
        schedule: "onecycle", "cosine" or "steps" (x0.1 at 50% and 75% of training, as He et al.).
        label_smoothing: cross-entropy label smoothing.
        compile: `torch.compile` the network (state dict keys unchanged).
        channels_last: keep images and conv weights channels-last (NHWC), which oneDNN and cuDNN convolve
            faster.
        test_time_flip: evaluate (val, test, predict) on the mean prediction for the image and its mirror;
            only for data trained with horizontal flips (Fashion-MNIST, CIFAR-10), never digits.
        class_names: names for the confusion matrix and predictions (linked from the data module).
        image_size: the side of the square images the network reads (linked from the data module).
        mean: the per-channel mean that inputs are normalised by (linked from the data module).
        std: the per-channel standard deviation that inputs are normalised by (linked from the data module).
        resize: images of other sizes are brought to `image_size` (shorter side resized, centre cropped), as the
            training images were (linked from the data module: a folder with `--data.size`).
        init_from: start from trained weights, to fine-tune: a checkpoint of this task, or the name of weights
            that ship with residual-kit ("digits"). Weights whose shapes match are loaded; a head of another
            number of classes starts anew; a first convolution of another number of channels is adapted.
    """

    def __init__(
        self,
        net: ResNetConfig = ResNetConfig(),  # noqa: B008 (a frozen-by-convention dataclass, copied by the CLI)
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        schedule: Literal["onecycle", "cosine", "steps"] = "onecycle",
        label_smoothing: float = 0.0,
        compile: bool = False,
        channels_last: bool = True,
        test_time_flip: bool = False,
        class_names: list[str] | None = None,
        image_size: int = 28,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        resize: bool = False,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = net.build()
        num_classes = net.num_classes
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.confusion = MulticlassConfusionMatrix(num_classes)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.init_from and not getattr(self, "_initialised", False):
            self._initialised = True  # a resumed run's checkpoint is loaded over these afterwards
            report = load_matching(self.net, initial_weights(self.hparams.init_from, self.net.config.arch))
            rank_zero_info(f"init from {self.hparams.init_from}: {report}")
        spec = getattr(getattr(self.trainer, "datamodule", None), "spec", None)
        if self.hparams.test_time_flip and spec is not None and not spec.mirrored_in_training:
            raise ValueError(
                f"test_time_flip mirrors the images, but {spec.name} is never trained on mirrored ones (a mirrored "
                f"digit is another glyph): set it false for {spec.name}"
            )

    def configure_model(self) -> None:
        if self.hparams.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            self.net.compile()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)  # (B, num_classes)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities for evaluation: log p(y|x), or log of the mean of p(y|x) and p(y|mirror x)."""
        log_p = self(x).log_softmax(-1)
        if not self.hparams.test_time_flip:
            return log_p
        both = torch.stack([log_p, self(x.flip(-1)).log_softmax(-1)])
        return both.logsumexp(0) - math.log(2)  # (B, num_classes)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y)
        self.train_acc(logits, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        log_p = self.evaluate(x)  # normalised: cross_entropy's log_softmax leaves it unchanged
        self.val_acc(log_p, y)
        self.log("val/loss", self._loss(log_p, y), prog_bar=True, sync_dist=True)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        log_p = self.evaluate(x)
        self.test_acc(log_p, y)
        self.confusion.update(log_p, y)
        self.log("test/loss", self._loss(log_p, y), sync_dist=True)
        self.log("test/acc", self.test_acc)

    def on_test_epoch_end(self) -> None:
        matrix = self.confusion.compute()  # reduced across processes
        self.confusion.reset()
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            fig, _ = MulticlassConfusionMatrix(len(self.class_names)).plot(matrix.cpu(), labels=self.class_names)
            fig.set_size_inches(7, 6)
            save_figure(fig, run_dir(self.trainer) / "confusion_matrix.png")

    def predict_step(self, batch: tuple[torch.Tensor, list[str]], batch_idx: int) -> dict[str, Any]:
        x, paths = batch
        return {"paths": list(paths), "probabilities": self.evaluate(x).exp()}  # (B, num_classes)

    # --- use from Python ---
    def preprocess(self, images: Any) -> torch.Tensor:
        """Image files, PIL images or a list of them -> the normalised batch the network reads, (N, C, H, W);
        the mean and standard deviation are the training data's, saved with the model."""
        h = self.hparams
        items = images if isinstance(images, (list, tuple)) else [images]
        channels = self.net.config.in_channels
        batch = torch.stack([image_tensor(item, channels, h.image_size, h.resize) for item in items]) / 255
        mean = torch.tensor(h.mean or DATASETS["mnist"].mean).view(-1, 1, 1)
        std = torch.tensor(h.std or DATASETS["mnist"].std).view(-1, 1, 1)
        return ((batch - mean) / std).to(self.device)

    @torch.no_grad()
    def probabilities(self, images: Any) -> torch.Tensor:
        """Class probabilities (N, num_classes) of image files or PIL images (see `preprocess`)."""
        self.eval()
        return self.evaluate(self.preprocess(images)).exp()

    def classify(self, images: Any) -> list[str]:
        """The class name of each image file or PIL image: `model.classify("digit.png")` -> ["7"]."""
        return [self.class_names[i] for i in self.probabilities(images).argmax(dim=1).tolist()]

    def deployable(self) -> Deployable:
        """For `export`: pixels in [0, 1], (B, C, H, W) -> class probabilities (B, num_classes), normalised inside
        (the network's own prediction: no mirrored test-time average)."""
        h = self.hparams
        mean, std = h.mean or DATASETS["mnist"].mean, h.std or DATASETS["mnist"].std
        net = Normalised(self.net, list(mean), list(std), torch.nn.Softmax(dim=1))
        example = torch.rand(2, self.net.config.in_channels, h.image_size, h.image_size)
        return Deployable(net, (example,), ({0: torch.export.Dim("batch")},), ["pixels"], ["probabilities"])

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        if h.optimizer == "sgd":
            opt = torch.optim.SGD(
                self.parameters(), lr=h.lr, momentum=h.momentum, nesterov=h.nesterov, weight_decay=h.weight_decay
            )
        else:
            opt = torch.optim.AdamW(self.parameters(), lr=h.lr, weight_decay=h.weight_decay)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        if h.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=h.lr, total_steps=steps)
        elif h.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        else:  # "steps"
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[steps // 2, steps * 3 // 4], gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class PredictionCSVWriter(CSVWriter):
    """Write `predict` results to `predictions.csv`: path, predicted label, then one probability per class."""

    filename, things = "predictions.csv", "predictions"

    def header(self, pl_module: Any, predictions: Any) -> list[str]:
        return ["path", "label", *map("p_{}".format, class_names(pl_module, predictions))]

    def rows(self, pl_module: Any, predictions: Any) -> list[list[str]]:
        probs = torch.cat([p["probabilities"] for p in predictions]).float().cpu()
        names = class_names(pl_module, predictions)
        paths = [path for p in predictions for path in p["paths"]]
        return [
            [str(p), names[int(row.argmax())], *(f"{v:.6f}" for v in row.tolist())]
            for p, row in zip(paths, probs, strict=True)
        ]


def class_names(pl_module: Any, predictions: Any) -> list[str]:
    """The model's class names, or the class indices."""
    return getattr(pl_module, "class_names", [str(i) for i in range(predictions[0]["probabilities"].shape[1])])


class ResNetCLI(TaskCLI):
    task, model_class, datamodule_class = "resnet", ImageClassifier, ImageDataModule
    max_epochs = 12
    monitor, mode, checkpoint_filename = "val/acc", "max", "best-epoch{epoch:02d}-acc{val/acc:.4f}"
    links = (
        ("data.num_classes", "model.net.num_classes"),
        ("data.in_channels", "model.net.in_channels"),
        ("data.class_names", "model.class_names"),
        ("data.image_size", "model.image_size"),
        ("data.mean", "model.mean"),
        ("data.std", "model.std"),
        ("data.resize", "model.resize"),
    )
    writer = PredictionCSVWriter
    divergence_hint = "pre-activation blocks (--model.net.placement=pre)"


def cli_main(args: list[str] | None = None) -> Any:
    return task_main(ResNetCLI, args)


if __name__ == "__main__":
    run(cli_main)
