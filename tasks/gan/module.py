"""`DigitGAN`: a residual-block GAN that generates handwritten digits, trained by Lightning's manual optimisation.

Quality (digit-FID and the rest) is measured by the `GANEvaluation` callback (tasks/gan/quality.py).
"""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from torch import nn
from torch.optim.swa_utils import AveragedModel

from residual_kit.models.gan import GANConfig
from residual_kit.optim import param_groups
from tasks.core.module import NetworkCheckpoint
from tasks.data.gan_digits import to_tanh_range
from tasks.gan.conditioning import Classes, Clusters, Condition, kmeans_centroids
from tasks.gan.losses import GeneratorLoss, ModeSeeking, VarietyFloor
from tasks.gan.sampling import Sampling, ema_with_warmup, most_confident, rolled_draws


class DigitGAN(NetworkCheckpoint, pl.LightningModule):
    """Generator and discriminator trained in turn; the generator's EMA draws every evaluated and sampled digit.

    Args:
        net: G and D (`--model.net.arch`, `--model.net.dim`, the residual options ...; see `GANConfig`).
        condition: what G reads beside z and D projects (see `tasks.gan.conditioning`): `Classes` (default: the
            digit's label, with AC-GAN's class loss), `Codes` (InfoGAN), `Clusters` (the self-conditioned GAN,
            configs/gan_unconditional.yaml), or null (unconditional).
        g_losses: the generator's terms beside the adversarial loss (see `tasks.gan.losses`); None:
            [ModeSeeking(0.3), VarietyFloor(7.0)], which keep the digits of one condition varied.
        sampling: truncation and best-of-k for the digits that are evaluated and sampled (see `Sampling`).
        loss: "hinge" or "wgan-gp".
        gp_weight: gradient-penalty weight (wgan-gp only).
        n_dis: discriminator steps per generator step.
        lr_g: generator Adam learning rate (SNGAN's 2e-4: a conditional G that learns as fast as D learns the
            classes ignores z and collapses to one image per class).
        lr_d: discriminator Adam learning rate.
        betas: Adam betas (SNGAN: 0.0, 0.9).
        ema_decay: decay of the generator's weight average, reached after a warm-up (min(decay, (1+n)/(10+n))).
        channels_last: keep G and D in NHWC memory layout, which oneDNN and cuDNN convolve faster.
    """

    def __init__(
        self,
        net: GANConfig = GANConfig(),  # noqa: B008 (copied by the CLI)
        condition: Condition | None = lazy_instance(Classes),  # noqa: B008 (jsonargparse's lazy default)
        g_losses: list[GeneratorLoss] | None = None,
        sampling: Sampling = Sampling(),  # noqa: B008
        loss: Literal["hinge", "wgan-gp"] = "hinge",
        gp_weight: float = 10.0,
        n_dis: int = 1,
        lr_g: float = 2e-4,
        lr_d: float = 8e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        ema_decay: float = 0.999,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if condition is not None:
            condition.check(net.z_dim)
        self.condition, self.sampling = condition, sampling
        if sampling.best_of > 1 and not (condition and condition.loss > 0):
            raise ValueError(f"best_of={sampling.best_of} ranks draws by D's class head, which needs a condition whose "
                             "loss is above 0: set one, or best_of=1")  # fmt: skip
        self.automatic_optimization = False
        self.g_losses = nn.ModuleList([ModeSeeking(0.3), VarietyFloor(7.0)] if g_losses is None else g_losses)
        for term in self.g_losses:
            term.setup(condition)
        if isinstance(condition, Clusters):  # k-means centroids of the training digits in [-1, 1], fitted at start
            self.register_buffer("centroids", torch.zeros(condition.size, 28 * 28))
        self.net = net.build(condition.size if condition else 0, bool(condition and condition.projection))
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.ema = AveragedModel(self.net.generator, avg_fn=ema_with_warmup(ema_decay), use_buffers=True)

    @property
    def generator(self) -> nn.Module:
        return self.net.generator

    @property
    def discriminator(self) -> nn.Module:
        return self.net.discriminator

    # --- drawing digits ---
    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.generator.z_dim, device=self.device, generator=generator)

    def asked(self, n: int) -> torch.Tensor | None:
        """The labels asked of `n` digits drawn for evaluation: 0, 1, ..., 9, 0, ... with classes, else None."""
        return self.condition.asked(n, self.device) if self.condition else None

    @torch.no_grad()
    def sample(self, z: torch.Tensor, asked: torch.Tensor | None = None) -> torch.Tensor:
        """Digits in [0, 1] from the EMA generator, (B, 1, 28, 28), of the asked labels (classes only)."""
        self.ema.eval()
        z = self.sampling.noise(z)
        c, k = self.condition.fake(z, asked) if self.condition else None, self.sampling.best_of
        if k == 1:
            return (self.ema(z, c) + 1) / 2
        draws = self.ema(rolled_draws(z, self.condition.from_noise, k), c.repeat(k))
        return (most_confident(draws.unflatten(0, (k, len(z))), c, self.discriminator) + 1) / 2

    def on_train_start(self) -> None:
        """Fit the clusters once: a resumed run keeps its checkpoint's, and every process takes rank 0's."""
        if isinstance(self.condition, Clusters) and not self.centroids.any():
            centroids = kmeans_centroids(self.trainer.train_dataloader.dataset, self.condition.size)
            self.centroids.copy_(self.trainer.strategy.broadcast(centroids.to(self.centroids), src=0))

    # --- losses ---
    def head_loss(self, logits: torch.Tensor | None, condition: torch.Tensor | None) -> torch.Tensor | float:
        """The condition's loss on D's class head: cross-entropy weighted by the condition (0 without one)."""
        if logits is None or condition is None or not self.condition.loss:
            return 0.0
        return self.condition.loss * F.cross_entropy(logits, condition)

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor, c_real: torch.Tensor | None,
               c_fake: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
        """D's loss on real digits of condition c_real and fakes of c_fake; its head learns the real digits'
        condition where they have one (classes, clusters), else the fakes' (codes)."""
        projected = None if c_real is None else torch.cat([c_real, c_fake])
        both, logits = self.discriminator.score_and_logits(torch.cat([real, fake]), projected)
        d_real, d_fake = both.chunk(2)  # one pass over both halves: D has no batch statistics
        head = 0.0
        if logits is not None:
            n = len(real)
            head = self.head_loss(logits[:n], c_real) if c_real is not None else self.head_loss(logits[n:], c_fake)
        if self.hparams.loss == "hinge":
            return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean() + head
        eps = torch.rand(real.shape[0], 1, 1, 1, device=self.device)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.discriminator(mix, c_real).sum(), mix, create_graph=True)
        penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return d_fake.mean() - d_real.mean() + self.hparams.gp_weight * penalty + head

    def g_loss(self, fake: torch.Tensor, z: torch.Tensor, c_fake: torch.Tensor | None) -> torch.Tensor:
        projected = c_fake if self.condition is not None and self.condition.projection else None
        score, logits = self.discriminator.score_and_logits(fake, projected)
        loss = -score.mean() + self.head_loss(logits, c_fake)
        half = len(fake) // 2
        for term in self.g_losses:
            if term.weight:
                loss = loss + term.weight * term(fake[: 2 * half], z[: 2 * half], c_fake)
        return loss

    # --- training ---
    def paired_noise(self, b: int, asked: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z for b fakes and their asked labels; with generator terms, the second half repeats the first's labels
        (and the entries of z that draw a code or cluster): the halves are pairs."""
        z = self.noise(b)
        if not any(term.weight for term in self.g_losses):
            return z, asked
        half, drawn = b // 2, self.condition.from_noise if self.condition else 0  # rows past 2*half are not paired
        if drawn:
            z[half : 2 * half, :drawn] = z[:half, :drawn]
        return z, None if asked is None else torch.cat([asked[:half], asked[:half], asked[2 * half :]])

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        real = to_tanh_range(images)
        c_real = self.condition.real(real, labels, getattr(self, "centroids", None)) if self.condition else None
        asked = labels if isinstance(self.condition, Classes) else None
        opt_g, opt_d = self.optimizers()
        g_step = (batch_idx + 1) % self.hparams.n_dis == 0
        for term in self.g_losses:
            term.observe(real, c_real)

        z, asked = self.paired_noise(real.shape[0], asked)
        c_fake = self.condition.fake(z, asked) if self.condition else None
        with torch.set_grad_enabled(g_step):  # one forward of G serves D's step and then G's
            fake = self.generator(z, c_fake)
        d_loss = self.d_loss(real, fake.detach(), c_real, c_fake)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.log("train/d_loss", d_loss, prog_bar=True)
        if not g_step:
            return
        g_loss = self.g_loss(fake, z, c_fake)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.ema.update_parameters(self.generator)
        self.log("train/g_loss", g_loss, prog_bar=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        h = self.hparams
        return [
            torch.optim.Adam(param_groups(self.generator, 0.0), lr=h.lr_g, betas=h.betas),
            torch.optim.Adam(param_groups(self.discriminator, 0.0), lr=h.lr_d, betas=h.betas),
        ]

    # --- evaluation: `GANEvaluation` (a callback) scores the samples against these real digits ---
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Nothing to compute here: the evaluation callback reads the real digits of each batch."""

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """As `validation_step`."""

    # --- predict and use from Python ---
    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        seeds, labels, asked = batch
        if asked.any() and not isinstance(self.condition, Classes):
            raise ValueError("--data.labels needs a class-conditional GAN; this one is not conditioned on classes")
        return self.draw(labels.tolist(), seeds=seeds.tolist()).cpu()

    @torch.no_grad()
    def draw(self, labels: list[int] | int, seeds: list[int] | None = None) -> torch.Tensor:
        """Digits in [0, 1], (N, 1, 28, 28): of the given labels (a class-conditional GAN), or `labels` digits when
        it is an int. Digit i's noise comes from `seeds[i]` (default: i), so a seed gives one digit."""
        n = labels if isinstance(labels, int) else len(labels)
        seeds = list(range(n)) if seeds is None else seeds
        z = torch.stack([torch.randn(self.generator.z_dim, generator=torch.Generator().manual_seed(int(s)))
                         for s in seeds]).to(self.device)  # fmt: skip
        asked = None
        if isinstance(self.condition, Classes):
            asked = torch.as_tensor(labels if not isinstance(labels, int) else range(n), device=self.device)
            asked = asked % self.condition.size
        return self.sample(z, asked)


__all__ = ["DigitGAN"]
