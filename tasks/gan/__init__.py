"""A residual-block GAN that generates handwritten digits: `python -m tasks.gan fit`.

module.py (the LightningModule), conditioning.py (what G is conditioned on), losses.py (G's extra terms),
sampling.py (truncation, best-of-k, the EMA), classifier.py and quality.py (digit-FID and the other scores),
cli.py (the CLI and the sample writer).
"""

from tasks.gan.cli import GANCLI, SampleWriter, cli_main
from tasks.gan.conditioning import Classes, Clusters, Codes, Condition
from tasks.gan.losses import GeneratorLoss, ModeSeeking, VarietyFloor
from tasks.gan.module import DigitGAN
from tasks.gan.sampling import Sampling

__all__ = [
    "GANCLI",
    "Classes",
    "Clusters",
    "Codes",
    "Condition",
    "DigitGAN",
    "GeneratorLoss",
    "ModeSeeking",
    "SampleWriter",
    "Sampling",
    "VarietyFloor",
    "cli_main",
]
