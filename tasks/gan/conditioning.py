"""What the GAN's generator is conditioned on: one object says what G reads, what D projects, how a real digit and
a fake get their condition, and how much D's class head counts.

    Classes(10)    the digit's label: class-conditional G, projection D, AC-GAN's class loss (Odena et al. 2017)
    Codes(10)      InfoGAN's categorical code drawn with the noise (Chen et al. 2016): D's head recovers it
    Clusters(50)   the self-conditioned GAN (Liu et al. 2020; Sage et al. 2018's Logo-GAN): k-means clusters of
                   the training digits stand in for labels; a real digit's is its nearest centroid
    None           unconditional: G reads z alone

A condition drawn with the noise (codes, clusters) is the argmax of z's first k entries: uniform for
z ~ N(0, I), and fixed by z, so a seed still gives one digit (and truncation keeps it).
"""

from __future__ import annotations

import torch
from sklearn.cluster import KMeans
from torch.utils.data import DataLoader, Dataset

from tasks.data.gan_digits import to_tanh_range


class Condition:
    """What G reads beside z (one of `size` values), and how D uses it.

    Attributes:
        size: the values G reads, as a class.
        projection: D projects digits on their condition (real digits have one).
        from_noise: z's first entries that pick a fake's condition (0: the condition is asked for, not drawn).
        loss: weight of the cross-entropy of D's head on the condition, for D and for G (0: no head loss).
    """

    size: int
    projection: bool
    from_noise: int
    loss: float

    def check(self, z_dim: int) -> None:
        """Refuse, in one line, a condition drawn from more of z's entries than z has (before any other use:
        a default given as jsonargparse's `lazy_instance` is built here)."""
        if self.from_noise > z_dim:
            raise ValueError(
                f"{type(self).__name__}({self.size}) is drawn from z's first entries: at most z_dim={z_dim}"
            )

    def real(self, real: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor | None:
        """The condition of real digits in [-1, 1] with their dataset labels."""
        return labels if self.projection and not self.from_noise else None

    def fake(self, z: torch.Tensor, asked: torch.Tensor | None) -> torch.Tensor:
        """The condition G draws a fake with: the asked label, or the one drawn with its noise."""
        return z[:, : self.from_noise].argmax(dim=1) if self.from_noise else asked

    def asked(self, n: int, device: torch.device) -> torch.Tensor | None:
        """The labels to ask for when drawing `n` digits to evaluate (0, 1, ..., 9, 0, ...), None if not asked."""
        return None

    def _check(self, name: str, value: int, loss: float) -> None:
        if value < 2:
            raise ValueError(f"{type(self).__name__}({name}={value}): give at least 2")
        if loss < 0:
            raise ValueError(f"{type(self).__name__}(loss={loss}): the head's loss weight cannot be negative")


class Classes(Condition):
    """The digit's label: G draws the asked class, D projects the real and fake digits on their class, and D's
    class head learns the real labels while G is rewarded when its digits are read as asked (AC-GAN).

    Args:
        num_classes: classes of the data (10 digits).
        loss: weight of the class loss (0: projection alone).
    """

    projection, from_noise = True, 0

    def __init__(self, num_classes: int = 10, loss: float = 0.3) -> None:
        self._check("num_classes", num_classes, loss)
        self.size, self.loss = num_classes, loss

    def asked(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.arange(n, device=device) % self.size


class Codes(Condition):
    """InfoGAN's categorical code: drawn with the noise, read by G as a class, recovered by D's head from the
    digit (for D and G alike), so that each code becomes one kind of digit without labels.

    Args:
        codes: values of the code.
        loss: weight of the code loss.
    """

    projection = False

    def __init__(self, codes: int = 10, loss: float = 0.3) -> None:
        self._check("codes", codes, loss)
        self.size = self.from_noise = codes
        self.loss = loss


class Clusters(Condition):
    """The self-conditioned GAN: k-means clusters of the training digits (fitted once when training starts, kept
    in the checkpoint) stand in for labels. A real digit's cluster is its nearest centroid, a fake's is drawn with
    its noise; D projects both on their cluster and its head learns the real digits' clusters.

    Args:
        clusters: k, the clusters.
        loss: weight of the cluster loss.
    """

    projection = True

    def __init__(self, clusters: int = 50, loss: float = 0.3) -> None:
        self._check("clusters", clusters, loss)
        self.size = self.from_noise = clusters
        self.loss = loss

    def real(self, real: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        return nearest_centroid(real, centroids)


@torch.no_grad()
def kmeans_centroids(dataset: Dataset, k: int, seed: int = 0) -> torch.Tensor:
    """k-means centroids (k, 784) of a dataset's digits in [-1, 1] (the data module gives them normalised)."""
    images = torch.cat([x for x, _ in DataLoader(dataset, batch_size=1000)])
    pixels = to_tanh_range(images).flatten(1)  # (N, 784)
    return torch.from_numpy(KMeans(k, n_init=3, random_state=seed).fit(pixels.numpy()).cluster_centers_).float()


def nearest_centroid(digits: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The cluster of each digit in [-1, 1], (B, 1, 28, 28) -> (B,)."""
    return torch.cdist(digits.flatten(1), centroids).argmin(dim=1)


__all__ = ["Classes", "Clusters", "Codes", "Condition", "kmeans_centroids", "nearest_centroid"]
