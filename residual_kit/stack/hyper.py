"""Hyper-connections (Zhu et al. 2024) and their manifold-constrained forms (mHC, DeepSeek-AI 2025; mHC-lite,
2601.05732): n residual streams mixed by learned width and depth connections around each sub-layer's branch."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .protocol import Traced, branch_only, layer_ends, sublayers


class HyperConnections(Traced, nn.Module):
    """y = sum of n streams after L sub-layers of hyper-connections around the branches T_k.

    With H (..., n, D) the streams, sub-layer k reads h = A_m^T H and writes H' = B^T T_k(h) + A_r^T H
    (the paper's Eq. 3-5): A_m (n) are the width connections into the sub-layer, A_r (n x n) the mixing of
    the streams, B (n) the depth connections out of it. T_k is the sub-layer's `Residual.branch`
    (its pre-norm, f, post-branch norm, scale and drop path): the streams replace its merge. Static:
    learned vectors and matrices. Dynamic (the paper's Eq. 10-12): each also gets s * tanh(norm(H) W), with
    W initialised to zero and s to 0.01, so that both forms start from the static values. Initialisation
    (Eq. 14): A_m = e_(k mod n), A_r = I, B = 1, and the input is copied into all n streams; every stream
    then carries the residual stream x_k of the plain stack, and the sum of the streams is n x_L, which a
    final norm turns into the plain network's output.

    Args:
        layers: the layers, each a `Residual` or a module of `Residual` sub-layers (see `sublayers`); their
            options that act on the merge are refused (`branch_only`).
        dim: width D.
        streams: n, the expansion rate (the paper uses 4).
        dynamic: the input-dependent form (DHC) instead of the static one (SHC).
    """

    scalars = ("s_alpha", "s_beta")

    connects = True  # its weights connect layers: no weight decay, init kept (residual_kit.optim)

    design = "hyper"

    def __init__(self, layers: Sequence[nn.Module], dim: int, streams: int = 4, dynamic: bool = True) -> None:
        super().__init__()
        if streams < 1:
            raise ValueError(f"streams={streams} must be at least 1")
        self.layers = nn.ModuleList(layers)
        self.sublayers = branch_only([s for layer in self.layers for s in sublayers(layer)], self.design)
        self.ends = layer_ends(self.layers)
        n, depth = streams, len(self.sublayers)
        self.streams, self.dynamic = n, dynamic
        self.read = nn.Parameter(torch.eye(n)[[k % n for k in range(depth)]].clone())  # A_m per sub-layer (L, n)
        self.mix = nn.Parameter(torch.eye(n).repeat(depth, 1, 1))  # A_r per sub-layer (L, n, n)
        self.write = nn.Parameter(torch.ones(depth, n))  # B per sub-layer (L, n)
        if dynamic:
            self.build_dynamic(depth, dim)

    def build_dynamic(self, depth: int, dim: int) -> None:
        """The input-dependent terms (Eq. 10-12): per-stream LayerNorm, tanh(H W) and the scales s."""
        n = self.streams
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(depth)])
        # W_m, W_r and W_beta of Eq. 10-12 as the rows of one (1 + n + 1, D) matrix per sub-layer: one product,
        # laid out as nn.Linear's weight, whose weight gradient is the fast one on a CPU
        self.w_dynamic = nn.Parameter(torch.zeros(depth, 1 + n + 1, dim))
        self.s_alpha = nn.Parameter(torch.full((depth,), 0.01))
        self.s_beta = nn.Parameter(torch.full((depth,), 0.01))

    def connections(self, k: int, streams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[A_m A_r] (n, 1 + n) or (..., n, 1 + n), and B (n) or (..., n), of sub-layer k for streams H (..., n, D)."""
        width, write = torch.cat([self.read[k].unsqueeze(-1), self.mix[k]], dim=-1), self.write[k]
        if not self.dynamic:
            return width, write
        h = self.norms[k](streams)  # (..., n, D)
        d = torch.tanh(F.linear(h, self.w_dynamic[k]))  # (..., n, 1 + n + 1): tanh(H W) for [A_m A_r] and B
        return torch.addcmul(width, self.s_alpha[k], d[..., :-1]), torch.addcmul(write, self.s_beta[k], d[..., -1])

    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        """x (..., D) -> (..., D); keyword arguments go to every sub-layer."""
        streams = x.unsqueeze(-2).repeat_interleave(self.streams, dim=-2)  # (..., n, D); a copy, not an expand,
        # whose zero stride sent the first sub-layer's products down PyTorch's per-token matmul loop
        for k, sublayer in enumerate(self.sublayers):
            width, write = self.connections(k, streams)
            h, mixed = read_and_mix(width, streams)  # A_m^T H (..., D) and A_r^T H (..., n, D)
            out, _ = sublayer.branch(h, **kwargs)  # T_k(h) (..., D)
            streams = torch.addcmul(mixed, write.unsqueeze(-1), out.unsqueeze(-2))  # A_r^T H + B^T T(h)
            self.trace_mix(width[..., 1:])
            if k in self.ends:
                self.trace(streams)  # all n streams: their RMS is the stream's, their gradient the one that flows
        return streams.sum(-2)  # (..., D)

    def extra_repr(self) -> str:
        return f"streams={self.streams}, dynamic={self.dynamic}, sublayers={len(self.sublayers)}"


def read_and_mix(width: torch.Tensor, streams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A_m^T H and A_r^T H as one product by the paper's (1 + n) x n matrix [A_m A_r]^T.

    width [A_m A_r] (n, 1 + n) or (..., n, 1 + n), streams H (..., n, D) -> (..., D), (..., n, D).
    An einsum, not `@`: for per-token (dynamic) weights, a batched matmul of thousands of 5 x 4 matrices
    ran slower on a CPU, and static weights become one matmul over all tokens.
    """
    spec = "jm,...jd->...md" if width.dim() == 2 else "...jm,...jd->...md"
    h, mixed = torch.einsum(spec, width, streams).split([1, streams.shape[-2]], dim=-2)
    return h.squeeze(-2), mixed


def sinkhorn(logits: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """The doubly stochastic P = diag(u) exp(logits) diag(v) by Sinkhorn-Knopp, for (..., n, n) logits.

    Forward: `iters` rounds of normalising rows, then columns. Backward: the gradient of the exact
    projection by implicit differentiation (see `_Sinkhorn`), so autograd keeps one tensor, not 2 * iters.
    """
    return _Sinkhorn.apply(logits, iters)


def _sinkhorn_iterations(logits: torch.Tensor, iters: int) -> torch.Tensor:
    n = logits.shape[-1]
    m = (logits - logits.amax(dim=(-2, -1), keepdim=True)).exp().flatten(-2)  # (..., n*n), row-major
    eye, ones = torch.eye(n, dtype=m.dtype, device=m.device), torch.ones(n, n, dtype=m.dtype, device=m.device)
    row_sums, col_sums = torch.kron(eye, ones), torch.kron(ones, eye)  # m @ these: each entry's row / column sum
    tiny = torch.finfo(m.dtype).tiny  # a row or column of underflowed entries must not divide by zero
    for _ in range(iters):  # one (n*n x n*n) matmul per sum: faster on a CPU than sum(-1) of tiny rows
        m = m / (m @ row_sums).clamp_min(tiny)
        m = m / (m @ col_sums).clamp_min(tiny)
    return m.unflatten(-1, (n, n))


class _Sinkhorn(torch.autograd.Function):
    """Sinkhorn-Knopp with the implicit gradient of its fixed point.

    P_ij = exp(X_ij + f_i + g_j) with rows and columns of P summing to 1. Differentiating the two
    constraints gives, for G = dL/dP, dL/dX = P * (G - a 1^T - 1 b^T), where [a; b] solves
    [[I, P], [P^T, I]] [a; b] = [rowsum(P * G); colsum(P * G)]. Eliminating b = c - P^T a leaves
    (I - P P^T) a = r - P c, whose null space (a = 1) leaves a + b unchanged and is fixed by adding 1 1^T / n.
    Near a permutation matrix P P^T -> I and the system turns singular while its right side goes to 0 (the
    projection saturates and its gradient vanishes): a ridge of a few machine epsilons keeps the solve finite.
    """

    @staticmethod
    def forward(logits: torch.Tensor, iters: int) -> torch.Tensor:
        return _sinkhorn_iterations(logits, iters)

    @staticmethod
    def setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (p,) = ctx.saved_tensors
        n = p.shape[-1]
        pg = p * grad
        r, c = pg.sum(-1, keepdim=True), pg.sum(-2).unsqueeze(-1)  # (..., n, 1)
        eye = torch.eye(n, dtype=p.dtype, device=p.device)
        ridge = 10 * torch.finfo(p.dtype).eps
        system = (1 + ridge) * eye - p @ p.transpose(-1, -2) + 1.0 / n
        a = torch.linalg.solve(system, r - p @ c)  # (..., n, 1)
        b = c - p.transpose(-1, -2) @ a
        return p * (grad - a - b.transpose(-1, -2)), None


class ManifoldHyperConnections(HyperConnections):
    """Hyper-connections whose stream mixing stays doubly stochastic (mHC, DeepSeek-AI 2025).

    A_r = Sinkhorn-Knopp(exp(R)) has rows and columns that sum to 1, so a product of them over any number of
    sub-layers does too: the mean of the streams passes every sub-layer unchanged (the identity mapping that
    plain hyper-connections can lose). The read and write weights are non-negative: A_m = sigmoid(a),
    B = 2 sigmoid(b). The paper's parametrisation (§4.2): the n streams flattened to one n*D vector x, then
    RMSNorm, then one linear map with no tanh, each part scaled by a learned gate:
    a = alpha_pre (x phi_pre) + b_pre, b = alpha_post (x phi_post) + b_post, R = alpha_res mat(x phi_res) + b_res.
    phi starts at zero and the gates at 0.01, so the static biases decide at init: R = 4 I (A_r near the
    identity), a = +-4 around e_(k mod n), b = 0 (B = 1), which mimics `HyperConnections`' initialisation.

    Args: as `HyperConnections`, and `iters`, the Sinkhorn-Knopp iterations (the paper uses 20; 30 keep the
    row and column sums within 1e-3 of 1 after large training steps). The backward does not run through the
    iterations: `sinkhorn` differentiates the converged projection implicitly, which keeps one tensor for
    autograd instead of 2 * iters.
    """

    scalars = ("alpha",)

    design = "mhc"

    def __init__(
        self, layers: Sequence[nn.Module], dim: int, streams: int = 4, dynamic: bool = True, iters: int = 30
    ) -> None:
        super().__init__(layers, dim, streams, dynamic)
        self.iters = iters
        with torch.no_grad():
            self.read.mul_(8).sub_(4)  # b_pre: +4 for the read stream, -4 elsewhere
            self.mix.mul_(4)  # b_res
            self.write.zero_()  # b_post

    def build_dynamic(self, depth: int, dim: int) -> None:
        """RMSNorm of the flattened streams, one linear map phi to [pre, post, res] and the gates alpha."""
        n = self.streams
        self.norms = nn.ModuleList([nn.RMSNorm(n * dim) for _ in range(depth)])
        self.phi = nn.Parameter(torch.zeros(depth, 2 * n + n * n, n * dim))  # nn.Linear's layout
        self.alpha = nn.Parameter(torch.full((depth, 3), 0.01))  # alpha_pre, alpha_post, alpha_res

    def connections(self, k: int, streams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.streams
        pre, res, post = self.read[k], self.mix[k], self.write[k]
        if self.dynamic:
            x = self.norms[k](streams.flatten(-2))  # (..., n * D)
            d_pre, d_post, d_res = F.linear(x, self.phi[k]).split([n, n, n * n], dim=-1)
            alpha = self.alpha[k]
            pre, post = pre + alpha[0] * d_pre, post + alpha[1] * d_post
            res = res + alpha[2] * d_res.unflatten(-1, (n, n))
        return torch.cat([torch.sigmoid(pre).unsqueeze(-1), sinkhorn(res, self.iters)], dim=-1), 2 * torch.sigmoid(post)


class PermutationHyperConnections(ManifoldHyperConnections):
    """mHC-lite (2601.05732): mHC with A_r = sum_p softmax(r)_p P_p, a convex combination of the n! permutation
    matrices, doubly stochastic exactly (Birkhoff-von Neumann) with no Sinkhorn iterations and an exact gradient.
    r = alpha_res (x phi_res) + b_res as in mHC, with n! logits in place of n * n. At init only b_res counts: the
    identity's logit is set so that A_r's diagonal equals mHC's (Sinkhorn of exp(4 I)), the others are 0.

    Args: as `ManifoldHyperConnections`, less `iters`; n! must stay small (streams <= 5).
    """

    design = "mhc_lite"

    def __init__(self, layers: Sequence[nn.Module], dim: int, streams: int = 4, dynamic: bool = True) -> None:
        if not 1 <= streams <= 5:
            raise ValueError(f"streams={streams}: mHC-lite mixes all n! permutations; take 1 to 5 streams")
        perms = list(itertools.permutations(range(streams)))  # the identity first
        self.count = len(perms)
        super().__init__(layers, dim, streams, dynamic)
        self.register_buffer("perms", torch.eye(streams)[torch.tensor(perms)], persistent=False)  # (n!, n, n)
        depth = len(self.sublayers)
        self.mix = nn.Parameter(torch.zeros(depth, self.count))  # b_res
        with torch.no_grad():
            self.mix[:, 0] = self.identity_logit(streams)

    def identity_logit(self, n: int) -> float:
        """The identity's logit that gives A_r mHC's initial diagonal d: the identity's weight w plus the
        weights of the other (n-1)! - 1 permutations that fix a stream, (1 - w) / (n! - 1) each."""
        if n == 1:
            return 0.0
        d = sinkhorn(4 * torch.eye(n), 30)[0, 0].item()
        share = (math.factorial(n - 1) - 1) / (self.count - 1)
        w = (d - share) / (1 - share)
        return math.log(w * (self.count - 1) / (1 - w))

    def build_dynamic(self, depth: int, dim: int) -> None:
        n = self.streams
        self.norms = nn.ModuleList([nn.RMSNorm(n * dim) for _ in range(depth)])
        self.phi = nn.Parameter(torch.zeros(depth, 2 * n + self.count, n * dim))  # nn.Linear's layout
        self.alpha = nn.Parameter(torch.full((depth, 3), 0.01))

    def connections(self, k: int, streams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.streams
        pre, res, post = self.read[k], self.mix[k], self.write[k]
        if self.dynamic:
            x = self.norms[k](streams.flatten(-2))  # (..., n * D)
            d_pre, d_post, d_res = F.linear(x, self.phi[k]).split([n, n, self.count], dim=-1)
            alpha = self.alpha[k]
            pre, post, res = pre + alpha[0] * d_pre, post + alpha[1] * d_post, res + alpha[2] * d_res
        mix = torch.einsum("...p,pij->...ij", res.softmax(-1), self.perms)  # sum_p softmax(r)_p P_p
        return torch.cat([torch.sigmoid(pre).unsqueeze(-1), mix], dim=-1), 2 * torch.sigmoid(post)

    def extra_repr(self) -> str:
        return f"streams={self.streams}, permutations={self.count}, dynamic={self.dynamic}"


__all__ = ["HyperConnections", "ManifoldHyperConnections", "PermutationHyperConnections", "read_and_mix", "sinkhorn"]
