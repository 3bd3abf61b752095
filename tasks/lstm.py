"""Residual stacked LSTMs read strips of handwritten digits: `python -m tasks.lstm fit`.

python -m tasks.lstm fit                                        # 4 layers, residual from the second
python -m tasks.lstm fit --model.net.layers=8 --model.net.residual=false   # the plain 8-layer stack
python -m tasks.lstm predict --ckpt_path <ckpt> --data.predict_path strips/   # -> <run>/readings.csv
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.text import CharErrorRate

from residual_kit.models.lstm import LSTMReaderConfig
from residual_kit.optim import param_groups
from tasks.core.cli import TaskCLI, run, task_main
from tasks.core.export import Deployable, Normalised
from tasks.core.module import NetworkCheckpoint
from tasks.core.outputs import pyplot, run_dir, save_figure
from tasks.core.writers import CSVWriter
from tasks.data.digit_strips import MEAN, STD, DigitStripDataModule, strip_tensor

BLANK = 0  # CTC blank; digit d is class d + 1


def greedy_decode(log_probs: torch.Tensor) -> list[str]:
    """Best path: argmax per step, merge repeats, drop blanks. log_probs: (B, T, C)."""
    out = []
    for path in log_probs.argmax(-1).tolist():
        keep = [c for i, c in enumerate(path) if c != BLANK and (i == 0 or c != path[i - 1])]
        out.append("".join(str(c - 1) for c in keep))
    return out


def beam_decode(log_probs: torch.Tensor, beam: int = 8) -> list[str]:
    """CTC prefix beam search (Hannun et al. 2014): sums over all paths of each prefix. log_probs: (B, T, C)."""

    out = []
    for seq in log_probs.float().cpu().tolist():
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix: (p_blank, p_char)
        for step in seq:
            nxt: dict[tuple[int, ...], tuple[float, float]] = {}
            add = functools.partial(_extend, nxt)
            for prefix, (pb, pc) in beams.items():
                total = logsumexp(pb, pc)
                add(prefix, total + step[BLANK], -math.inf)
                for c in range(1, len(step)):
                    if prefix and prefix[-1] == c:
                        add(prefix, -math.inf, pc + step[c])  # repeat without a blank: same prefix
                        add((*prefix, c), -math.inf, pb + step[c])  # blank in between: a new character
                    else:
                        add((*prefix, c), -math.inf, total + step[c])
            beams = dict(sorted(nxt.items(), key=lambda kv: -logsumexp(*kv[1]))[:beam])
        best = max(beams.items(), key=lambda kv: logsumexp(*kv[1]))[0]
        out.append("".join(str(c - 1) for c in best))
    return out


def logsumexp(*xs: float) -> float:
    m = max(xs)
    return m if m == -math.inf else m + math.log(sum(math.exp(x - m) for x in xs))


def _extend(beams: dict[tuple[int, ...], tuple[float, float]], prefix: tuple[int, ...], pb: float, pc: float) -> None:
    """Add path probabilities (ending in blank, ending in a character) to `prefix`."""
    b, c = beams.get(prefix, (-math.inf, -math.inf))
    beams[prefix] = (logsumexp(b, pb), logsumexp(c, pc))


class StripReader(NetworkCheckpoint, pl.LightningModule):
    """Column features -> LSTM stack -> per-step digit classes, trained with CTC.

    Args:
        net: the reader (`--model.net.layers`, `--model.net.residual`, `--model.net.placement`, ...; see
            `LSTMReaderConfig`).
        decoder: "greedy" or "beam" (CTC prefix beam search) for val/test/predict.
        beam_width: beams kept by the beam decoder.
        strip_width: the strips' width in pixels (linked from the data module): `read` pads narrower strips to it.
        lr: AdamW peak learning rate (OneCycle).
        weight_decay: AdamW weight decay of the weight matrices (`residual_kit.optim`: norms, biases, scalars and
            connection weights take none).
    """

    def __init__(
        self,
        net: LSTMReaderConfig = LSTMReaderConfig(),  # noqa: B008 (copied by the CLI)
        decoder: Literal["greedy", "beam"] = "greedy",
        beam_width: int = 8,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        strip_width: int = 148,
    ) -> None:
        super().__init__()
        if decoder not in ("greedy", "beam"):
            raise ValueError(f"decoder={decoder!r} is not one of ('greedy', 'beam')")
        if net.num_classes != 11:
            raise ValueError(f"the reader needs 11 classes (CTC blank + 10 digits), got num_classes={net.num_classes}")
        self.save_hyperparameters()
        self.net = net.build()
        self.metrics = nn.ModuleDict(
            {f"{s}_{n}": m for s in ("val", "test") for n, m in (("cer", CharErrorRate()), ("exact", MeanMetric()))}
        )
        self.shown: list[tuple[torch.Tensor, str, str]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, W) -> log-probabilities (B, T, 11)."""
        return self.net(images)

    def loss(self, log_probs: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, t, _ = log_probs.shape
        targets = labels[labels >= 0] + 1  # concatenated, shifted past the blank
        input_lengths = torch.full((b,), t, dtype=torch.long)
        return F.ctc_loss(log_probs.transpose(0, 1).float(), targets, input_lengths, lengths, blank=BLANK,
                          zero_infinity=True)  # fmt: skip

    def decode(self, log_probs: torch.Tensor) -> list[str]:
        h = self.hparams
        return beam_decode(log_probs, h.beam_width) if h.decoder == "beam" else greedy_decode(log_probs)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        images, labels, lengths = batch
        loss = self.loss(self(images), labels, lengths)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: tuple[torch.Tensor, ...], split: str) -> None:
        images, labels, lengths = batch
        log_probs = self(images)
        predicted = self.decode(log_probs)
        target = ["".join(map(str, row[row >= 0].tolist())) for row in labels]
        self.metrics[f"{split}_cer"](predicted, target)
        self.metrics[f"{split}_exact"](torch.tensor([p == t for p, t in zip(predicted, target, strict=True)]).float())
        self.log(f"{split}/loss", self.loss(log_probs, labels, lengths), sync_dist=True)
        self.log(f"{split}/cer", self.metrics[f"{split}_cer"], prog_bar=True)
        self.log(f"{split}/exact", self.metrics[f"{split}_exact"], prog_bar=True)
        if split == "test" and len(self.shown) < 24:
            self.shown += list(zip(images.cpu(), predicted, target, strict=True))[: 24 - len(self.shown)]

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.shown = []

    def on_test_epoch_end(self) -> None:
        if self.trainer.is_global_zero and self.shown and not self.trainer.sanity_checking:
            path = save_figure(strip_grid(self.shown), run_dir(self.trainer) / "test_strips.png")
            self.print(f"test strips with their readings: {path}")

    def predict_step(self, batch: tuple[torch.Tensor, list[str]], batch_idx: int) -> list[tuple[str, str]]:
        images, paths = batch
        return list(zip(paths, self.decode(self(images)), strict=True))

    # --- use from Python ---
    @torch.no_grad()
    def read(self, strips: Any) -> list[str]:
        """The digits of each strip (an image file or PIL image, 28 pixels high, white digits on black, at most
        `width` wide): `model.read("strip.png")` -> ["3712"]."""
        items = strips if isinstance(strips, (list, tuple)) else [strips]
        self.eval()
        batch = torch.stack([strip_tensor(item, self.hparams.strip_width) for item in items]).to(self.device)
        return self.decode(self(batch))

    def deployable(self) -> Deployable:
        """For `export`: strips of pixels in [0, 1], (B, 1, 28, W), W a multiple of 4 -> per-step log-probabilities
        (B, T, 11) for CTC decoding (blank first), normalised inside. ONNX keeps B and W free; a `torch.export`
        program unrolls the LSTM over time, so it keeps the training strips' width (and needs B of 2 or more)."""
        width = 4 * torch.export.Dim("quarters", min=2, max=1024)
        example = torch.rand(2, 1, 28, self.hparams.strip_width - self.hparams.strip_width % 4)
        return Deployable(Normalised(self.net, [MEAN], [STD]), (example,), ({0: torch.export.Dim("batch"), 3: width},),
                          ["strips"], ["log_probs"])  # fmt: skip

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        opt = torch.optim.AdamW(param_groups(self, h.weight_decay), lr=h.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=h.lr, total_steps=max(1, int(self.trainer.estimated_stepping_batches)), pct_start=0.15
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def strip_grid(shown: list[tuple[torch.Tensor, str, str]], cols: int = 3) -> Any:
    """A figure of strips titled with what the model read (red where it is wrong)."""
    plt = pyplot()

    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 0.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, got, want) in zip(axes.flat, shown, strict=False):
        ax.imshow(image[0] * STD + MEAN, cmap="gray", vmin=0, vmax=1)
        ok = got == want
        ax.set_title(f"read {got or '∅'}" + ("" if ok else f" (is {want})"), fontsize=8, color="k" if ok else "r")
    fig.tight_layout()
    return fig


class ReadingWriter(CSVWriter):
    """Print and write the string read from each strip to `readings.csv` (path, digits)."""

    filename, things, columns = "readings.csv", "readings", ("path", "digits")

    def show(self, row: Any) -> str:
        return f"{row[0]}: {row[1]}"


class LSTMCLI(TaskCLI):
    task, model_class, datamodule_class = "lstm", StripReader, DigitStripDataModule
    max_epochs = 2
    trainer_overrides = {"gradient_clip_val": 1.0}
    monitor, mode, checkpoint_filename = "val/exact", "max", "best-epoch{epoch:02d}-exact{val/exact:.4f}"
    links = (("data.width", "model.strip_width"),)
    writer = ReadingWriter
    divergence_hint = "a lower --model.lr"


def cli_main(args: list[str] | None = None) -> Any:
    return task_main(LSTMCLI, args)


if __name__ == "__main__":
    run(cli_main)
