"""A new residual variant from your own code: one class, one registration, and every model takes it by name.

    python examples/register_variant.py

Registers a convex merge, y = (1 - λ) s + λ b with a learned λ = sigmoid(w), under the name "convex",
then builds a `Residual` and a whole ResNet-20 with `merge="convex"` and trains them for a step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from residual_kit import MERGES, Residual
from residual_kit.models import create_model


class ConvexMerge(nn.Module):
    """y = (1 - λ) s + λ b, λ = sigmoid(w), w from `init` (λ ≈ 0.12: the block starts close to the shortcut)."""

    fresh = True  # a new tensor: the activation after it may run in place

    def __init__(self, init: float = -2.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(init))

    def forward(self, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        lam = torch.sigmoid(self.w)
        return (1 - lam) * s + lam * b

    def formula(self, sx: str, fx: str) -> str:
        return f"(1-λ)·{sx} + λ·{fx}"


# builder(slot) -> module; the slot says the block's widths, stride, layout and depth (residual_kit.Slot)
MERGES.register("convex", lambda slot: ConvexMerge())


def main() -> None:
    block = Residual(nn.Linear(8, 8), merge="convex", placement="pre", dim=8)
    print(block.formula())  # y = (1-λ)·x + λ·f(norm(x))
    x = torch.randn(4, 8)
    lam = torch.sigmoid(block.merge.w)
    torch.testing.assert_close(block(x), (1 - lam) * x + lam * block.wrap(block.pre_norm(x)))

    net = create_model("resnet20", in_channels=1, merge="convex")
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    F.cross_entropy(net(images), labels).backward()
    merges = [m for m in net.modules() if isinstance(m, ConvexMerge)]
    print(f"resnet20 with merge='convex': {len(merges)} convex merges, all trained: "
          f"{all(m.w.grad is not None for m in merges)}")  # fmt: skip


if __name__ == "__main__":
    main()
