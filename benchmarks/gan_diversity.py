"""How varied are a GAN's digits within a class, against real digits, for one checkpoint and class by class.

The GAN's evaluation logs the same measure as `variety` / `variety_min` at every validation and test.

    python -m benchmarks.gan_diversity --ckpt runs/gan/version_0/checkpoints/<best>.ckpt [--samples 5000]
        [--classifier <the --evaluation.classifier_path of that run, if one was given>]

For each class: the mean squared distance of the judge's features (the digit classifier behind
digit-FID) to the class centroid, for generated digits (by requested label, or by the judge's label
when unconditional) and for the first 5,000 real training digits, as the task's test does (50 held-out
digits a class put the real spread off by up to 35%). Prints generated / real per class and the mean
(1.0 is real handwriting's variety, near 0 is one image per class), and the share of each class's
generated digits that the judge reads with confidence >= 0.9.
"""

from __future__ import annotations

import argparse

import torch

from tasks.data import ImageDataModule
from tasks.gan import DigitGAN
from tasks.gan.classifier import DigitJudge, load_digit_classifier
from tasks.gan.quality import within_class_spread


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--source", default="auto")
    parser.add_argument("--classifier", default=None, help="digit classifier; default: the cached one")
    args = parser.parse_args()

    torch.manual_seed(0)
    gan = DigitGAN.load_from_checkpoint(args.ckpt, map_location="cpu").eval()
    judge = DigitJudge(load_digit_classifier(args.classifier, args.source))
    data = ImageDataModule("mnist", source=args.source, augment=False)
    data.setup("fit")
    train = data.train_set
    real = torch.cat([judge(x) for x in (train.images[:5000].float() / 255).split(500)])
    labels = torch.arange(args.samples) % 10
    fake = torch.cat([judge(gan.sample(z, y if gan.num_classes else None))
                      for z, y in zip(gan.noise(args.samples).split(500), labels.split(500), strict=True)])  # fmt: skip
    conf, pred = judge.classify(fake).softmax(-1).max(-1)
    if not gan.num_classes:
        labels = pred
    ratio = within_class_spread(fake, labels) / within_class_spread(real, train.labels[:5000])
    legible = [(conf[labels == c] >= 0.9).float().mean().item() for c in range(10)]
    print("within-class spread, generated / real:", " ".join(f"{c}:{r:.2f}" for c, r in enumerate(ratio.tolist())))
    print(f"mean {ratio.nanmean():.2f}, lowest {ratio.min():.2f}  (1.0 = as varied as real training digits)")
    print("recognisable (confidence >= 0.9):", " ".join(f"{c}:{r:.2f}" for c, r in enumerate(legible)))


if __name__ == "__main__":
    main()
