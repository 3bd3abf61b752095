"""Wrap a conv block, an MLP, an LSTM layer and an attention layer in `Residual`; run each, print each.

python examples/wrap_any_module.py
"""

import torch
from torch import nn

from residual_kit import LayerScale, Residual

# A ResNet v1 basic block that halves the resolution: y = relu(pad(x) + F(x)), option A shortcut.
conv = Residual(
    nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, 1, 1)),
    shortcut="pad",
    out_dim=32,
    stride=2,
    data_format="channels_first",
    activation="relu",
)
# A pre-norm Transformer MLP with LayerScale and stochastic depth: y = x + drop_path(γ ⊙ MLP(LN(x))).
mlp = Residual(
    nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64)),
    placement="pre",
    dim=64,
    scale=LayerScale(64, init=1e-4),
    drop_path=0.1,
)
# An LSTM layer (GNMT-style): the residual applies to the outputs, the (h, c) state comes back as is.
lstm = Residual(nn.LSTM(64, 64, batch_first=True), placement="pre", dim=64)
# Self-attention with a mask passed through, ReZero-scaled so the block starts as the identity.
attn = Residual(nn.MultiheadAttention(64, 4, batch_first=True), scale="rezero")

images, tokens = torch.randn(8, 16, 28, 28), torch.randn(8, 10, 64)
causal = torch.triu(torch.ones(10, 10, dtype=torch.bool), 1)
print(conv, conv(images).shape, "\n")  # (8, 32, 14, 14)
print(mlp, mlp(tokens).shape, "\n")  # (8, 10, 64)
out, (h, c) = lstm(tokens)
print(lstm, out.shape, h.shape, "\n")  # (8, 10, 64), (1, 8, 64)
out, weights = attn(tokens, tokens, tokens, attn_mask=causal)
print(attn, out.shape, torch.equal(out, tokens))  # ReZero at init: exactly the identity
