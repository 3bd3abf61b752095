"""residual-kit: one combinator, `Residual`, that turns any module f into a residual block x + f(x)."""

from .activation import ACTIVATIONS
from .conditioned import AdaLNZero, ConditionalNorm
from .deepnorm import deepnorm_alpha, deepnorm_beta, deepnorm_init_
from .drop_path import DropPath, drop_path, drop_path_rates
from .merge import MERGES, Add, ConcatFuse, GatedMerge, NoShortcut, ScaledAdd
from .norm import NORMS, MoveAxis, make_norm
from .registry import Registry
from .residual import Residual
from .scale import SCALES, LayerScale, LearnableScale, ReZero, Scale
from .shortcut import SHORTCUTS, InferredShortcut, PadShortcut, Projection
from .slot import Slot
from .stack import STACKS, DepthWeightedAverage, HyperConnections, ManifoldHyperConnections, PlainStack

__all__ = [
    "ACTIVATIONS",
    "MERGES",
    "NORMS",
    "SCALES",
    "SHORTCUTS",
    "STACKS",
    "AdaLNZero",
    "Add",
    "ConcatFuse",
    "ConditionalNorm",
    "DepthWeightedAverage",
    "DropPath",
    "GatedMerge",
    "HyperConnections",
    "InferredShortcut",
    "LayerScale",
    "LearnableScale",
    "ManifoldHyperConnections",
    "MoveAxis",
    "NoShortcut",
    "PadShortcut",
    "PlainStack",
    "Projection",
    "ReZero",
    "Registry",
    "Residual",
    "Scale",
    "ScaledAdd",
    "Slot",
    "deepnorm_alpha",
    "deepnorm_beta",
    "deepnorm_init_",
    "drop_path",
    "drop_path_rates",
    "make_norm",
]
__version__ = "0.3.0"
