"""A residual-block GAN that generates handwritten digits: `python -m tasks.gan fit`.

python -m tasks.gan fit                                   # ResNet G and D, hinge loss, class-conditional
python -m tasks.gan fit --model.net.arch=dcgan            # the plain DCGAN baseline, same budget
python -m tasks.gan fit --config configs/gan_unconditional.yaml   # no labels
python -m tasks.gan predict --ckpt_path <ckpt> --data.labels '[3, 3, 7]'   # -> <run>/samples/

Quality (digit-FID and the rest) is measured by the `GANEvaluation` callback (tasks/digit_quality.py),
configured as `--evaluation.*`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.optim.swa_utils import AveragedModel
from torchvision.utils import make_grid

from residual_kit.models.gan import GANConfig, code_of
from tasks.cli import TaskCLI, run
from tasks.data.gan_digits import GANDataModule, signed
from tasks.digit_quality import GANEvaluation
from tasks.gan_clusters import kmeans_centroids, nearest_centroid
from tasks.gan_losses import mode_seeking_loss, variety_floor_loss
from tasks.gan_sampling import ema_with_warmup, rolled_draws, truncate
from tasks.outputs import run_dir, save_png


class DigitGAN(pl.LightningModule):
    """Generator and discriminator trained by manual optimisation; EMA generator for evaluation and sampling.

    Args:
        net: G and D (`--model.net.arch`, `--model.net.num_classes`, ...; see `GANConfig`). num_classes 10
            (default) gives class-conditional digits (class embedding and CBN in G, projection D); 0 gives
            unconditional ones, best trained at lr_g 8e-4 and conditioned on clusters of the training
            digits (`net.clusters`, configs/gan_unconditional.yaml).
        loss: "hinge" or "wgan-gp".
        gp_weight: gradient-penalty weight (wgan-gp only).
        n_dis: discriminator steps per generator step.
        lr_g: generator Adam learning rate. SNGAN's 2e-4: a conditional G that learns as fast as D learns
            the classes ignores z and collapses to one junk image per class.
        lr_d: discriminator Adam learning rate; 4x SNGAN's 2e-4, which won on a few-thousand-step CPU budget.
        betas: Adam betas (SNGAN: 0.0, 0.9).
        ema_decay: decay of the generator's weight average, reached after a warm-up (min(decay, (1+n)/(10+n))).
        aux_weight: weight of the class loss of D's head. Conditional: AC-GAN's (Odena et al. 2017),
            CE(V h(real), y) for D and CE(V h(G(z, y)), y) for G, beside the projection term; with
            `net.clusters` the same, y a real digit's cluster and the cluster drawn with a fake's noise.
            Unconditional with `net.codes`: InfoGAN's (Chen et al. 2016), CE(Q(G(z, c)), c) for both D
            and G, so that each code c draws its own kind of digit. 0 turns it off; None: 0.3 where
            there are labels, codes or clusters (it buys back the legibility that the variety terms cost), else 0.
        mode_seeking: weight of MSGAN's mode-seeking term (Mao et al. 2019): G also maximises
            mean|G(z1, y) - G(z2, y)| / mean|z1 - z2| over pairs of noises with the same labels, as
            1 / (ratio + 1e-5), so that different z give different digits; 0 turns it off. 0.3, beside the
            variety floor: 0.4 (floor 5) and 0.5 (floor 7) cost legibility (94.9% and 92.8% recognisable
            for seed 42), and without the floor 0.3 left the least varied class at 0.55x real
            (docs/history.md).
        variety_floor: weight of a per-class floor on variety (`variety_floor_loss`): G also pushes apart
            the pairs of digits of one label that lie closer than two real digits of that class do (the
            real spread is a running mean over the training batches), leaving the classes that already
            vary as handwriting does alone. It lifted the least varied class where a larger mode-seeking
            weight cost legibility. Needs labels or clusters (then per cluster); None: 7.0 with labels, else 0.
        truncation: BigGAN's truncation trick (Brock et al. 2019) for evaluation and samples: the EMA
            generator reads z from N(0, I) cut to [-t, t] (each z mapped through the normal CDF, so a
            seed gives the same digit's truncated form): more legible, less varied digits. None: no cut.
            Training always uses the full N(0, I).
        best_of: draws per digit for evaluation and samples: G draws k digits from z and k - 1 variants of
            it (the entries that pick the class, code or cluster kept, the rest rolled by 1..k-1 places), and
            the one D's class head is surest has the asked class, code or cluster is kept. Rejection by the
            discriminator (after Azadi et al. 2019): more legible, less varied digits (2 in the unconditional
            config: 86.2% recognisable to 87.8%, recall 0.58 to 0.50, on one checkpoint). Needs the class
            head (aux_weight > 0). 1: every draw is kept.
        channels_last: keep G and D in NHWC memory layout: 1.13x faster steps on a 2-core CPU (oneDNN),
            measured by benchmarks/gan_step.py; not yet measured on a GPU.
    """

    def __init__(
        self,
        net: GANConfig = GANConfig(),  # noqa: B008 (copied by the CLI)
        loss: Literal["hinge", "wgan-gp"] = "hinge",
        gp_weight: float = 10.0,
        n_dis: int = 1,
        lr_g: float = 2e-4,
        lr_d: float = 8e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        ema_decay: float = 0.999,
        aux_weight: float | None = None,
        mode_seeking: float = 0.3,
        variety_floor: float | None = None,
        truncation: float | None = None,
        best_of: int = 1,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if aux_weight and not net.conditions:
            raise ValueError(
                "aux_weight needs class labels, codes or clusters: set num_classes=10 (or, without labels, "
                "codes=10 or clusters=50), or aux_weight=0"
            )
        if variety_floor and not (net.num_classes or net.clusters):
            raise ValueError(
                "variety_floor needs class labels or clusters: set num_classes=10 (or clusters=50), or variety_floor=0"
            )
        if truncation is not None and truncation <= 0:
            raise ValueError(f"truncation={truncation}: the cut-off t must be positive (e.g. 1.0), or null for none")
        self.aux_weight = (0.3 if net.conditions else 0.0) if aux_weight is None else aux_weight
        if best_of < 1:
            raise ValueError(f"best_of={best_of}: the draws per digit must be at least 1 (1 keeps every draw)")
        if best_of > 1 and not (net.conditions and self.aux_weight > 0):
            raise ValueError(
                f"best_of={best_of} ranks draws by D's class head, which needs classes, codes or clusters and "
                "aux_weight > 0: set them, or best_of=1"
            )
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.num_classes, self.codes, self.clusters = net.num_classes, net.codes, net.clusters
        self.drawn = net.drawn  # z's first entries that pick the code or cluster: 0 with labels or none
        self.variety_floor = (7.0 if net.num_classes else 0.0) if variety_floor is None else variety_floor
        labelled = net.num_classes or net.clusters  # real digits with a class: a label or a cluster
        # sum over training batches of the L1 distances between real digits of one class, and pair counts
        self.register_buffer("real_distance", torch.zeros(labelled))
        self.register_buffer("real_pairs", torch.zeros(labelled))
        if net.clusters:  # k-means centroids of the training digits in [-1, 1], fitted when training starts
            self.register_buffer("centroids", torch.zeros(net.clusters, 28 * 28))
        self.generator = net.generator()
        self.discriminator = net.discriminator()
        if channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.ema = AveragedModel(self.generator, avg_fn=ema_with_warmup(ema_decay), use_buffers=True)

    # --- pieces ---
    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.generator.z_dim, device=self.device, generator=generator)

    def labels(self, n: int) -> torch.Tensor | None:
        k = self.num_classes
        return torch.arange(n, device=self.device) % k if k else None

    @torch.no_grad()
    def sample(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Digits in [0, 1] from the EMA generator, (B, 1, 28, 28)."""
        self.ema.eval()
        t = self.hparams.get("truncation")
        z = truncate(z, t) if t else z
        c, k = self.condition(z, y), self.hparams.get("best_of", 1)
        if k == 1:
            return (self.ema(z, c) + 1) / 2
        digits = self.ema(rolled_draws(z, self.drawn, k), c.repeat(k)).unflatten(0, (k, len(z)))  # (k, B, 1, 28, 28)
        return (self.surest(digits, c) + 1) / 2

    @torch.no_grad()
    def surest(self, digits: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Of k digits per condition, (k, B, 1, 28, 28), the one D's class head gives c the highest probability."""
        d, training = self.discriminator, self.discriminator.training
        d.eval()  # spectral norm's power iteration must not move while D only ranks
        asked = c.repeat(len(digits))  # (k * B,): each draw's own digit's condition
        _, logits = d.score_and_logits(digits.flatten(0, 1), asked)
        d.train(training)
        sure = logits.log_softmax(dim=1).gather(1, asked[:, None]).view(len(digits), -1)  # (k, B)
        return digits[sure.argmax(dim=0), torch.arange(len(c), device=c.device)]

    def condition(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        """What G reads beside z: the class y (conditional), the code or cluster of z (unconditional), or nothing."""
        return code_of(z, self.drawn) if self.drawn else y

    def on_train_start(self) -> None:
        """Fit the clusters once: a resumed run keeps its checkpoint's, and every process takes rank 0's."""
        if self.clusters and not self.centroids.any():
            centroids = kmeans_centroids(self.trainer.train_dataloader.dataset, self.clusters).to(self.centroids)
            self.centroids.copy_(self.trainer.strategy.broadcast(centroids, src=0))

    def d_loss(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        y: torch.Tensor | None,
        code: torch.Tensor | None = None,
        y_fake: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """D's loss on real digits of labels y and fakes of labels y_fake (default: y)."""
        y_fake = y if y_fake is None else y_fake
        both, logits = self.discriminator.score_and_logits(
            torch.cat([real, fake]), None if y is None else torch.cat([y, y_fake])
        )
        d_real, d_fake = both.chunk(2)  # one pass over both halves: D has no batch statistics
        aux = 0.0
        if logits is not None:  # AC-GAN: the labels of the real digits; InfoGAN: the codes of the fakes
            aux = self.aux_loss(logits[: len(real)], y) if y is not None else self.aux_loss(logits[len(real) :], code)
        if self.hparams.loss == "hinge":
            return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean() + aux
        eps = torch.rand(real.shape[0], 1, 1, 1, device=self.device)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(mix, y).sum(), mix, create_graph=True)
        penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return d_fake.mean() - d_real.mean() + self.hparams.gp_weight * penalty + aux

    def g_loss(self, fake: torch.Tensor, y: torch.Tensor | None, code: torch.Tensor | None = None) -> torch.Tensor:
        score, logits = self.discriminator.score_and_logits(fake, y)
        return -score.mean() + (self.aux_loss(logits, y if y is not None else code) if logits is not None else 0.0)

    def aux_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor | float:
        w = self.aux_weight
        return w * F.cross_entropy(logits, y) if w else 0.0

    # --- training ---
    def noise_and_labels(self, b: int, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z for b fakes, and their labels; for the mode-seeking and variety-floor terms the second half
        repeats the first's labels (and codes: the entries of z that pick the code): the halves are pairs."""
        z = self.noise(b)
        if not (self.hparams.mode_seeking or self.variety_floor):
            return z, y
        half = b // 2  # rows 2 * half onwards (one, for an odd b) are not paired
        if self.drawn:
            z[half : 2 * half, : self.drawn] = z[:half, : self.drawn]
        return z, None if y is None else torch.cat([y[:half], y[:half], y[2 * half :]])

    @torch.no_grad()
    def update_real_spread(self, real: torch.Tensor, y: torch.Tensor) -> None:
        """Add this batch's L1 distances between real digits of one class to the running sums."""
        flat = real.flatten(1)  # (B, 784)
        same = y[:, None] == y[None, :]  # (B, B): pairs of one class (a digit with itself adds distance 0)
        distance = torch.cdist(flat, flat, p=1) / flat.shape[1] * same  # one cdist, not one per class
        self.real_distance.index_add_(0, y, distance.sum(1))
        self.real_pairs.index_add_(0, y, same.sum(1).to(self.real_pairs.dtype) - 1)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints from before the variety floor load, its running sums starting from zero."""
        for name in ("real_distance", "real_pairs"):
            checkpoint["state_dict"].setdefault(name, torch.zeros_like(getattr(self, name)))

    def real_spread(self, y: torch.Tensor) -> torch.Tensor:
        """s_y: the mean L1 distance (per pixel, in [-1, 1]) between two real digits of class y."""
        return (self.real_distance / self.real_pairs.clamp(min=1))[y].clamp(min=1e-3)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, y = batch
        real = signed(images)
        y = nearest_centroid(real, self.centroids) if self.clusters else y if self.num_classes else None
        opt_g, opt_d = self.optimizers()
        g_step = (batch_idx + 1) % self.hparams.n_dis == 0
        if self.variety_floor:
            self.update_real_spread(real, y)

        z, y_fake = self.noise_and_labels(real.shape[0], y)
        c = self.condition(z, y_fake)
        y_fake = c if self.clusters else y_fake  # a fake's cluster is drawn with its noise
        with torch.set_grad_enabled(g_step):  # one forward of G serves D's step and then G's
            fake = self.generator(z, c)
        d_loss = self.d_loss(real, fake.detach(), y, c, y_fake)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.log("train/d_loss", d_loss, prog_bar=True)
        if not g_step:
            return

        g_loss = self.g_loss(fake, y_fake, c)
        half = len(fake) // 2
        pairs, z_pairs = fake[: 2 * half], z[: 2 * half]
        if self.hparams.mode_seeking:
            g_loss = g_loss + self.hparams.mode_seeking * mode_seeking_loss(pairs, z_pairs)
        if self.variety_floor:
            g_loss = g_loss + self.variety_floor * variety_floor_loss(pairs, self.real_spread(y_fake[:half]))
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

    # --- evaluation: `GANEvaluation` (a callback) scores the samples against these real digits ---
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Nothing to compute here: the evaluation callback reads the real digits of each batch."""

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """As `validation_step`."""

    # --- predict: samples ---
    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        z, y = batch
        return self.sample(z, y if self.num_classes else None).cpu()


class SampleWriter(BasePredictionWriter):
    """Write the generated digits as one grid, as single PNGs, and a latent interpolation grid.

    Args:
        output_dir: folder for grid.png, interpolation.png and digits/NNNN.png; default `samples/` in
            the run folder.
        interpolation_rows: pairs of latents to interpolate between (10 steps each).
    """

    def __init__(self, output_dir: str | None = None, interpolation_rows: int = 8) -> None:
        super().__init__(write_interval="epoch")
        self.output_dir, self.interpolation_rows = output_dir, interpolation_rows

    def write_on_epoch_end(self, trainer: pl.Trainer, gan: Any, predictions: Any, batch_indices: Any) -> None:
        out = Path(self.output_dir) if self.output_dir else run_dir(trainer) / "samples"
        images = torch.cat(predictions)
        save_png(make_grid(images, nrow=math.ceil(math.sqrt(len(images))), padding=2), out / "grid.png")
        for i, image in enumerate(images):
            save_png(image, out / "digits" / f"{i:04d}.png")
        g = torch.Generator().manual_seed(trainer.datamodule.hparams.predict_seed + 1)
        ends = torch.randn(2, self.interpolation_rows, gan.generator.z_dim, generator=g).to(gan.device)
        t = torch.linspace(0, 1, 10, device=gan.device)[None, :, None]
        z = (ends[0][:, None] * (1 - t) + ends[1][:, None] * t).flatten(0, 1)  # (rows * 10, z_dim)
        y = (torch.arange(len(z), device=z.device) // 10) % 10 if gan.num_classes else None
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
    renamed = {
        **{k: f"--model.net.{k}" for k in ("arch", "num_classes", "z_dim")},
        "width": "--model.net.channels",
        **{k: f"--evaluation.{k}" for k in ("classifier_path", "confidence")},
        "eval_samples": "--evaluation.samples",
    }

    def add_arguments_to_parser(self, parser: Any) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_lightning_class_args(GANEvaluation, "evaluation")


def cli_main(args: list[str] | None = None) -> GANCLI:
    return GANCLI(args)


if __name__ == "__main__":
    run(cli_main)
