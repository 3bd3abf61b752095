"""residual-kit: one combinator, `Residual`, that turns any module f into a residual block x + f(x)."""

from .deepnorm import deepnorm_alpha, deepnorm_beta, deepnorm_init_, deepnorm_residual
from .drop_path import DropPath, drop_path
from .merge import Add, ConcatFuse, GatedMerge, ScaledAdd
from .norm import NORMS, MoveAxis, make_norm
from .residual import Residual
from .scale import LayerScale, LearnableScale, ReZero, Scale
from .shortcut import InferredShortcut, PadShortcut, Projection

__all__ = [
    "NORMS",
    "Add",
    "ConcatFuse",
    "DropPath",
    "GatedMerge",
    "InferredShortcut",
    "LayerScale",
    "LearnableScale",
    "MoveAxis",
    "PadShortcut",
    "Projection",
    "ReZero",
    "Residual",
    "Scale",
    "ScaledAdd",
    "deepnorm_alpha",
    "deepnorm_beta",
    "deepnorm_init_",
    "deepnorm_residual",
    "drop_path",
    "make_norm",
]
__version__ = "0.2.0"
