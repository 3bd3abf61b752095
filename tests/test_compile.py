"""torch.compile(fullgraph=True) traces every variant without a graph break, and matches eager."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from residual_kit import Residual, ScaledAdd


def conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8))


VARIANTS = {
    "identity": lambda: (Residual(nn.Linear(8, 8)), (2, 3, 8)),
    "pre": lambda: (Residual(nn.Linear(8, 8), placement="pre", dim=8), (2, 3, 8)),
    "post": lambda: (Residual(nn.Linear(8, 8), placement="post", dim=8), (2, 3, 8)),
    "sandwich": lambda: (Residual(nn.Linear(8, 8), placement="sandwich", norm="rms", dim=8), (2, 3, 8)),
    "projection": lambda: (
        Residual(conv(), shortcut="projection", dim=4, out_dim=8, stride=2, data_format="channels_first"),
        (2, 4, 8, 8),
    ),
    "pad": lambda: (Residual(conv(), shortcut="pad", out_dim=8, stride=2, data_format="channels_first"), (2, 4, 8, 8)),
    "learnable": lambda: (Residual(nn.Linear(8, 8), scale="learnable"), (2, 3, 8)),
    "rezero": lambda: (Residual(nn.Linear(8, 8), scale="rezero"), (2, 3, 8)),
    "layerscale": lambda: (Residual(nn.Linear(8, 8), scale="layerscale", dim=8), (2, 3, 8)),
    "deepnorm": lambda: (Residual(nn.Linear(8, 8), placement="post", dim=8, merge=ScaledAdd(2.0)), (2, 3, 8)),
    "drop_path": lambda: (Residual(nn.Linear(8, 8), drop_path=0.5), (2, 3, 8)),
    "gate": lambda: (Residual(nn.Linear(8, 8), merge="gate", dim=8), (2, 3, 8)),
    "concat": lambda: (
        Residual(conv(), merge="concat", dim=4, out_dim=8, data_format="channels_first", shortcut=nn.MaxPool2d(2)),
        (2, 4, 8, 8),
    ),
    "relu": lambda: (Residual(nn.Linear(8, 8), activation="relu"), (2, 3, 8)),
    "batchnorm_seq": lambda: (Residual(nn.Linear(8, 8), norm="batch", placement="post", dim=8), (2, 3, 8)),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fullgraph_no_graph_break(name):
    torch._dynamo.reset()
    block, shape = VARIANTS[name]()
    block.eval()
    x = torch.randn(shape)
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), block(x))


@torch._dynamo.config.patch(allow_rnn=True)  # dynamo refuses nn.LSTM itself by default, not our tuple handling
def test_lstm_tuple_output_compiles():
    torch._dynamo.reset()
    block = Residual(nn.LSTM(8, 8, batch_first=True), placement="pre", dim=8)
    x = torch.randn(2, 3, 8)
    y, (h, c) = torch.compile(block, fullgraph=True, backend="aot_eager")(x)
    y_ref, (h_ref, c_ref) = block(x)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)


def test_inductor_matches_eager_with_backward():
    torch._dynamo.reset()
    block = Residual(conv(), shortcut="pad", out_dim=8, stride=2, data_format="channels_first", activation="relu")
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    y_ref = block(x)
    (g_ref,) = torch.autograd.grad(y_ref.sum(), x)
    y = torch.compile(block, fullgraph=True)(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4)
