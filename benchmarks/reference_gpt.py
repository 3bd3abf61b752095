"""A hand-written pre-norm GPT, nanoGPT style: the baseline that the `Residual`-built GPT must match.

Its state dict keys are those of `residual_kit.models.gpt.GPT` with `placement="pre"`, so the weights of
one load into the other unchanged; attention and MLP are the same modules, only the residual is written
out by hand: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)).
"""

from __future__ import annotations

import torch
from torch import nn

from residual_kit.models.gpt import MLP, CausalSelfAttention, GPTConfig


class PreNorm(nn.Module):
    """x + f(LN(x)), written out."""

    def __init__(self, f: nn.Module, dim: int) -> None:
        super().__init__()
        self.wrap, self.pre_norm = f, nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.wrap(self.pre_norm(x))


class HandWrittenBlock(nn.Module):
    def __init__(self, c: GPTConfig, layer: int) -> None:
        super().__init__()
        self.attn = PreNorm(CausalSelfAttention(c.dim, c.heads, c.dropout, layer=layer), c.dim)
        self.mlp = PreNorm(MLP(c.dim, c.mlp_ratio * c.dim, c.dropout), c.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


class HandWrittenGPT(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(c.vocab_size, c.dim)
        self.pos = nn.Embedding(c.block_size, c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([HandWrittenBlock(c, i) for i in range(c.layers)])
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))
