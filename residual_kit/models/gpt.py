"""A small decoder-only Transformer whose attention and MLP sub-layers are each a `Residual`.

Where the norm sits is one switch for the whole stack, `placement` (Xiong et al. 2020; Wang et al. 2022),
and how the branch is scaled another, `scale` (Bachlechner et al. 2020; Touvron et al. 2021):
    post      y = LN(x + f(x))                  the original Transformer; needs warm-up, fails when deep
    pre       y = x + f(LN(x))                  trains at depth, activations grow with depth
    sandwich  y = x + LN(f(LN(x)))              bounds what each branch adds (CogView, NormFormer)
    deepnorm  y = LN(alpha x + f(x)), f init x beta   post-norm made stable (DeepNet)
    None      y = x + f(x)                      no norm; with scale="rezero", y = x + a f(x), a = 0 at init
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..deepnorm import deepnorm_alpha, deepnorm_beta, deepnorm_init_
from ..drop_path import drop_path_rates
from ..init import fixup_init_, scale_last_, zero_init_last_
from ..merge import ScaledAdd
from ..residual import Residual
from ..stack import STACKS

NormPlacement = Literal["post", "pre", "sandwich", "deepnorm"]
NORM_PLACEMENTS: tuple[str | None, ...] = ("post", "pre", "sandwich", "deepnorm", None)


@dataclass
class GPTConfig:
    """The GPT, configured once (nanoGPT's `GPTConfig`).

    Args:
        vocab_size: number of tokens.
        block_size: longest sequence.
        layers: number of Transformer layers (each two residual sub-layers).
        dim: model width.
        heads: attention heads.
        mlp_ratio: MLP hidden width / dim.
        dropout: dropout on embeddings, attention and MLP output.
        drop_path: stochastic depth of the last sub-layer, rising linearly from 0.
        placement: norm placement of every sub-layer (see the module docstring).
        scale: branch scale of every sub-layer: None, a float, "learnable", "rezero" or "layerscale".
        stack: what crosses layers, a name in `residual_kit.STACKS`: "plain" (x + f(x) per sub-layer), "hyper"
            (dynamic hyper-connections, `streams` residual streams), "mhc" (manifold-constrained ones),
            "dense" (DenseFormer's depth-weighted average after every layer). "hyper" and "mhc" need
            placement="pre" (the branches keep their pre-norm; the streams replace the addition).
        streams: residual streams of "hyper" and "mhc".
        init: depth-aware initialisation (`residual_kit.init`): "default" (torch's), "zero_last" (every
            branch's last layer at zero), "gpt2" (last layers scaled by 1/sqrt(2 layers)), "fixup" (Fixup,
            for placement=None with scale="learnable": training with no norm at all).
        value_residual: ResFormer's value residual (Zhou et al. 2024): every attention layer's values
            become (1 - mix) v + mix v_1, with v_1 the first layer's; None (or 0) is the plain attention.
    """

    vocab_size: int = 16
    block_size: int = 13
    layers: int = 4
    dim: int = 128
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    drop_path: float = 0.0
    placement: NormPlacement | None = "pre"
    scale: float | str | None = None
    stack: str = "plain"
    streams: int = 4
    value_residual: float | None = None
    init: Literal["default", "zero_last", "gpt2", "fixup"] = "default"


INITS = {"default": lambda model: None, "zero_last": zero_init_last_, "gpt2": scale_last_, "fixup": fixup_init_}


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

    def __init__(
        self, dim: int, heads: int, dropout: float = 0.0, layer: int = 0, value_mix: float | None = None
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads, self.dropout, self.layer, self.value_mix = heads, dropout, layer, value_mix
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, values: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """`values` carries the first layer's values to the others when `value_mix` is set (value residual)."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        if self.value_mix is not None and values is not None:
            first = values.setdefault("first", v)  # the first attention layer stores its own
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
            y = explicit_attention(q, k, v, causal)  # inductor fuses it: a training step 7% faster on CPU
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


def sublayer(f: nn.Module, config: GPTConfig, drop_path: float) -> Residual:
    """One sub-layer as a residual block, in the chosen norm placement and branch scale."""
    dim, placement = config.dim, config.placement
    if placement == "deepnorm":
        beta = deepnorm_beta(config.layers, "decoder")
        if isinstance(f, CausalSelfAttention):
            with torch.no_grad():
                deepnorm_init_(f.proj, beta)
                nn.init.xavier_normal_(f.qkv.weight[2 * dim :], gain=beta)  # values scaled, queries and keys not
        else:
            deepnorm_init_(f, beta)
        merge = ScaledAdd(deepnorm_alpha(config.layers, "decoder"))
        return Residual(f, placement="post", dim=dim, merge=merge, scale=config.scale, drop_path=drop_path)
    return Residual(f, placement=placement, dim=dim, scale=config.scale, drop_path=drop_path)


class Block(nn.Module):
    """One Transformer layer (nanoGPT's `Block`): x = attn(x), then x = mlp(x), each a residual sub-layer."""

    def __init__(self, config: GPTConfig, layer: int, rates: tuple[float, float]) -> None:
        super().__init__()
        c = config
        attention = CausalSelfAttention(c.dim, c.heads, c.dropout, layer, c.value_residual)
        self.attn = sublayer(attention, c, rates[0])
        self.mlp = sublayer(MLP(c.dim, c.mlp_ratio * c.dim, c.dropout), c, rates[1])

    def forward(self, x: torch.Tensor, **attention_kwargs: object) -> torch.Tensor:
        return self.mlp(self.attn(x, **attention_kwargs))


class PreNormBranch(nn.Module):
    """f(LN(x)), with no addition: a branch for hyper-connections, which own the residual streams."""

    def __init__(self, f: nn.Module, dim: int) -> None:
        super().__init__()
        self.pre_norm, self.wrap = nn.LayerNorm(dim), f

    def forward(self, x: torch.Tensor, **attention_kwargs: object) -> torch.Tensor:
        return self.wrap(self.pre_norm(x), **attention_kwargs)


def build_stack(c: GPTConfig, rates: list[float]) -> nn.Module:
    """The layers of the GPT in the chosen stack design (a name in `residual_kit.stack.STACKS`)."""
    design = STACKS.get_builder(c.stack)
    if design.residual_blocks:
        return design([Block(c, i, (rates[2 * i], rates[2 * i + 1])) for i in range(c.layers)], c.dim, c.streams)
    if c.placement != "pre":
        raise ValueError(f"stack={c.stack!r} keeps each branch's pre-norm: it needs placement='pre'")
    branches = []
    for i in range(c.layers):
        attention = CausalSelfAttention(c.dim, c.heads, c.dropout, i, c.value_residual)
        branches += [PreNormBranch(attention, c.dim), PreNormBranch(MLP(c.dim, c.mlp_ratio * c.dim), c.dim)]
    return design(branches, c.dim, c.streams)


class GPT(nn.Module):
    """Token + learned position embeddings -> `layers` x (attention, MLP) residual blocks -> tied head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = config
        if c.placement not in NORM_PLACEMENTS:
            raise ValueError(f"placement={c.placement!r} is not one of {NORM_PLACEMENTS}")
        self.config, self.block_size, self.placement = c, c.block_size, c.placement
        self.tok = nn.Embedding(c.vocab_size, c.dim)
        self.pos = nn.Embedding(c.block_size, c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = build_stack(c, drop_path_rates(c.drop_path, 2 * c.layers))
        self.norm = nn.LayerNorm(c.dim) if c.placement in ("pre", "sandwich") else nn.Identity()  # post ends normed
        self.head = nn.Linear(c.dim, c.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied (Press & Wolf 2017)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        if c.init not in INITS:
            raise ValueError(f"init={c.init!r} is not one of {list(INITS)}")
        INITS[c.init](self)

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
