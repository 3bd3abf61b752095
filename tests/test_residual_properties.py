"""Property tests: the identity and the formula hold over random shapes and dtypes."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from residual_kit import Residual

dtypes = st.sampled_from([torch.float32, torch.float64, torch.bfloat16])
tol = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 0.0}


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 4),
    lead=st.lists(st.integers(1, 5), min_size=0, max_size=2),
    dim=st.integers(1, 16),
    dtype=dtypes,
)
def test_rezero_identity_any_shape_dtype(batch, lead, dim, dtype):
    x = torch.randn(batch, *lead, dim).to(dtype)
    r = Residual(nn.Linear(dim, dim), placement="pre", dim=dim, scale="rezero").to(dtype)
    y = r(x)
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.equal(y, x)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), channels=st.integers(1, 6), grow=st.integers(0, 6), hw=st.integers(2, 9), dtype=dtypes)
def test_pad_shortcut_any_shape(batch, channels, grow, hw, dtype):
    x = torch.randn(batch, channels, hw, hw).to(dtype)
    out = channels + grow
    f = nn.Conv2d(channels, out, 3, stride=2, padding=1).to(dtype)
    y = Residual(f, shortcut="pad", data_format="channels_first")(x)
    expected = f(x)
    expected[:, :channels] += x[:, :, ::2, ::2]
    torch.testing.assert_close(y, expected, rtol=tol[dtype] or 1e-2, atol=tol[dtype] or 1e-2)


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 4), seq_len=st.integers(1, 6), dim=st.integers(2, 12), dtype=dtypes)
def test_post_norm_output_is_normalised(batch, seq_len, dim, dtype):
    x = torch.randn(batch, seq_len, dim).to(dtype)
    r = Residual(nn.Linear(dim, dim), placement="post", dim=dim).to(dtype)
    y = r(x).float()
    atol = 0.05 if dtype == torch.bfloat16 else 1e-4
    torch.testing.assert_close(y.mean(-1), torch.zeros(batch, seq_len), rtol=0, atol=atol)
