"""A small decoder-only Transformer whose attention and MLP sub-layers are each a `Residual`.

Where the norm sits is one switch for the whole stack, `placement` (Xiong et al. 2020; Wang et al. 2022),
and how the branch is scaled another, `scale` (Bachlechner et al. 2020; Touvron et al. 2021):
    post      y = LN(x + f(x))                  the original Transformer; needs warm-up, fails when deep
    pre       y = x + f(LN(x))                  trains at depth, activations grow with depth
    sandwich  y = x + LN(f(LN(x)))              bounds what each branch adds (CogView, NormFormer, Peri-LN)
    deepnorm  y = LN(alpha x + f(x)), f init x beta   post-norm made stable (DeepNet)
    None      y = x + f(x)                      no norm; with scale="rezero", y = x + a f(x), a = 0 at init
What crosses layers is `stack` (`residual_kit.stack`): every design runs the same `Block`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..norm import make_norm
from ..stack import build_stack
from .options import ModelPlacement, ResidualOptions


@dataclass
class GPTConfig(ResidualOptions):
    """The GPT, configured once (nanoGPT's `GPTConfig`); the residual options are `ResidualOptions`'.

    Args:
        vocab_size: number of tokens.
        block_size: longest sequence.
        layers: number of Transformer layers (each two residual sub-layers).
        dim: model width.
        heads: attention heads.
        mlp_ratio: MLP hidden width / dim.
        dropout: dropout on embeddings, attention and MLP output.
        stack: what crosses layers, a name in `residual_kit.STACKS`: "plain" (x + f(x) per sub-layer), "dense"
            (DenseFormer's depth-weighted averages), "hyper" (hyper-connections), "mhc" (manifold-constrained
            ones). Every design runs the same residual sub-layers, so the residual options apply in each.
        stack_options: the design's own options, e.g. {"streams": 4} for "hyper", {"dilation": 2} for "dense".
        value_residual: ResFormer's value residual (Zhou et al. 2024): every attention layer after the first mixes
            its values with the first layer's v_1: a float `mix` gives (1 - mix) v + mix v_1; "learned" gives
            l_2 v + l_1 v_1 with learned l_1, l_2 from 0.5 (ResFormer's learnable form); None is the plain attention.
    """

    vocab_size: int = 16
    block_size: int = 13
    layers: int = 4
    dim: int = 128
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    stack: str = "plain"
    stack_options: dict[str, Any] = field(default_factory=dict)
    value_residual: float | Literal["learned"] | None = None
    placement: ModelPlacement | None = field(default="pre", kw_only=True)

    def build(self) -> GPT:
        return GPT(self)


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, one (B, H, T, D) pair per layer."""

    keys: list[torch.Tensor | None] = field(default_factory=list)
    values: list[torch.Tensor | None] = field(default_factory=list)

    @property
    def length(self) -> int:
        return 0 if not self.keys or self.keys[0] is None else self.keys[0].shape[2]


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + causal mask) v, written out: what `scaled_dot_product_attention` computes."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, H, T, S)
    if causal:
        t, s = scores.shape[-2:]
        scores = scores.masked_fill(torch.ones(t, s, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return scores.softmax(-1) @ v  # (B, H, T, D)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through `scaled_dot_product_attention`, with an optional KV cache."""

    scalars = ("value_weights",)  # the value residual's l_1, l_2 (layers after the first)

    def __init__(
        self, dim: int, heads: int, dropout: float = 0.0, layer: int = 0, value_mix: float | str | None = None
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        if isinstance(value_mix, str) and value_mix != "learned":
            raise ValueError(f"value_residual={value_mix!r}: give a float mix, 'learned' or None")
        self.heads, self.dropout, self.layer, self.value_mix = heads, dropout, layer, value_mix
        if value_mix == "learned" and layer > 0:
            self.value_weights = nn.Parameter(torch.full((2,), 0.5))  # l_1 (first layer's values), l_2 (own)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    @torch.no_grad()
    def deepnorm_init_(self, beta: float) -> None:
        """DeepNet's init of attention: values and output projection with gain beta, queries and keys as they are."""
        nn.init.xavier_normal_(self.proj.weight, gain=beta)
        nn.init.zeros_(self.proj.bias)
        nn.init.xavier_normal_(self.qkv.weight[2 * self.proj.in_features :], gain=beta)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, values: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """`values` carries the first layer's values to the others when `value_mix` is set (value residual)."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        if self.value_mix is not None and values is not None:
            first = values.setdefault("first", v)  # the first attention layer stores its own
            if self.value_mix == "learned":
                v = v if self.layer == 0 else self.value_weights[1] * v + self.value_weights[0] * first
            else:
                v = (1 - self.value_mix) * v + self.value_mix * first
        causal = True
        if cache is not None:
            if len(cache.keys) <= self.layer:
                cache.keys.append(None)
                cache.values.append(None)
            past_k, past_v = cache.keys[self.layer], cache.values[self.layer]
            if past_k is not None:
                if t != 1:
                    raise ValueError("with a filled KV cache, feed one token at a time")
                k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
                causal = False  # the one new query may see every cached key
            cache.keys[self.layer], cache.values[self.layer] = k, v
        drop = self.dropout if self.training else 0.0
        if torch.compiler.is_compiling() and q.device.type == "cpu" and not drop:
            y = explicit_attention(q, k, v, causal)  # inductor fuses it, where it does not fuse the SDPA kernel
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=causal)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, hidden)
        self.proj = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, **attention_kwargs: object) -> torch.Tensor:
        """(B, T, C) -> (B, T, C); takes and ignores the attention's keyword arguments, so that a stack can
        pass them to every sub-layer."""
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """One Transformer layer (nanoGPT's `Block`): x = attn(x), then x = mlp(x), each a residual sub-layer."""

    def __init__(self, config: GPTConfig, layer: int, rates: tuple[float, float]) -> None:
        super().__init__()
        c = config
        attention = CausalSelfAttention(c.dim, c.heads, c.dropout, layer, c.value_residual)
        self.attn = c.residual_block(attention, rates[0], c.layers, layer, dim=c.dim)
        mlp = MLP(c.dim, c.mlp_ratio * c.dim, c.dropout)
        self.mlp = c.residual_block(mlp, rates[1], c.layers, layer, dim=c.dim)

    def forward(self, x: torch.Tensor, **attention_kwargs: object) -> torch.Tensor:
        return self.mlp(self.attn(x, **attention_kwargs))


class GPT(nn.Module):
    """Token + learned position embeddings -> `layers` x (attention, MLP) residual blocks -> tied head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = config
        c.check_residual_options()
        self.config, self.block_size, self.placement = c, c.block_size, c.placement
        self.tok = nn.Embedding(c.vocab_size, c.dim)
        self.pos = nn.Embedding(c.block_size, c.dim)
        self.drop = nn.Dropout(c.dropout)
        rates = c.drop_path_rates(2 * c.layers)
        layers = [Block(c, i, (rates[2 * i], rates[2 * i + 1])) for i in range(c.layers)]
        self.blocks = build_stack(c.stack, layers, c.dim, c.stack_options)
        self.norm = make_norm(c.final_norm(), c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied (Press & Wolf 2017)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        c.initialise(self)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T); with a cache, positions continue after it."""
        start = cache.length if cache is not None else 0
        t = idx.shape[1]
        if start + t > self.block_size:
            raise ValueError(f"sequence of {start + t} tokens is longer than block_size={self.block_size}")
        pos = torch.arange(start, start + t, device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))  # (B, T, C)
        values = {} if self.config.value_residual is not None else None
        x = self.blocks(x, cache=cache, values=values)
        return self.head(self.norm(x))  # (B, T, vocab)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append `max_new_tokens` tokens: greedy when temperature is 0, else sampled (optionally top-k)."""
        cache = KVCache() if use_cache else None
        out = idx
        logits = self(idx, cache)[:, -1]
        for step in range(max_new_tokens):
            if temperature <= 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            out = torch.cat([out, nxt], dim=1)
            if step == max_new_tokens - 1:
                break
            logits = self(nxt, cache)[:, -1] if use_cache else self(out)[:, -1]
        return out
