"""Clusters of the training digits, the labels of the self-conditioned GAN (`--model.net.clusters`).

Liu et al. 2020 (and Sage et al. 2018's Logo-GAN) condition a GAN on clusters of unlabelled images, so
that the discriminator asks each generated digit to look like the real digits of its cluster. Here the
clusters are k-means on pixels, fitted once before training; the labels are never read.
"""

from __future__ import annotations

import torch
from sklearn.cluster import KMeans
from torch.utils.data import DataLoader, Dataset

from tasks.data.gan_digits import signed


@torch.no_grad()
def kmeans_centroids(dataset: Dataset, k: int, seed: int = 0) -> torch.Tensor:
    """k-means centroids (k, 784) of a dataset's digits in [-1, 1] (the data module gives them normalised)."""
    images = torch.cat([x for x, _ in DataLoader(dataset, batch_size=1000)])
    pixels = signed(images).flatten(1)  # (N, 784)
    return torch.from_numpy(KMeans(k, n_init=3, random_state=seed).fit(pixels.numpy()).cluster_centers_).float()


def nearest_centroid(digits: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The cluster of each digit in [-1, 1], (B, 1, 28, 28) -> (B,)."""
    return torch.cdist(digits.flatten(1), centroids).argmin(dim=1)


__all__ = ["kmeans_centroids", "nearest_centroid"]
