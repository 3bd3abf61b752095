"""The residual GAN and `tasks.gan`: block shapes, spectral norm, one manual step, digit-FID, the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from residual_kit import Residual
from residual_kit.models import GANConfig, create_model
from residual_kit.models.gan import GAN_ARCHS, ResNetDiscriminator, ResNetGenerator, down_block, up_block
from tasks.gan import Classes, Clusters, Codes, DigitGAN, ModeSeeking, Sampling, VarietyFloor, cli_main
from tasks.gan.classifier import MEAN, STD, DigitClassifier, load_digit_classifier
from tasks.gan.quality import DigitQuality, GANEvaluation, precision_recall, within_class_spread


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


# the shipped judge's first four logits on the fixed batch of the judge test, as this page's machine computed them
JUDGE_LOGITS = [
    [2.9195971, -14.9766722, 13.5919256, -4.9393759],
    [8.5645828, -26.8106152, 20.2967224, -0.7347757],
    [8.2479601, -16.8858562, 12.7857542, -1.6255237],
    [8.0159035, -1.6244400, 1.9566725, -8.6270466],
]


def test_block_shapes():
    x = torch.randn(2, 8, 7, 7)
    up = up_block(8, 4, num_classes=10)
    assert isinstance(up, Residual) and up(x, torch.tensor([1, 2])).shape == (2, 4, 14, 14)
    assert down_block(1, 8, first=True)(torch.randn(2, 1, 28, 28)).shape == (2, 8, 14, 14)
    assert down_block(8, 8, downsample=False)(torch.randn(2, 8, 7, 7)).shape == (2, 8, 7, 7)


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_generator_and_discriminator_shapes(arch, num_classes):
    g, d = GAN_ARCHS[arch][0](16, 8, num_classes), GAN_ARCHS[arch][1](8, num_classes)
    y = torch.arange(4) % 10 if num_classes else None
    images = g(torch.randn(4, 16), y)
    assert images.shape == (4, 1, 28, 28) and images.abs().max() <= 1
    assert d(images, y).shape == (4,)


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
def test_conditional_generator_reads_the_class_from_the_start(arch):
    """An untrained conditional G already draws different images for different labels (same z)."""
    torch.manual_seed(0)
    g = GAN_ARCHS[arch][0](16, 8, num_classes=10).eval()
    z = torch.randn(1, 16).expand(10, 16)
    images = g(z, torch.arange(10))
    assert all(not torch.allclose(images[0], images[k]) for k in range(1, 10))


def test_discriminator_is_spectrally_normalised():
    torch.manual_seed(0)
    d = ResNetDiscriminator(8, num_classes=10)
    convs = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert convs and all(hasattr(m, "parametrizations") and "weight" in m.parametrizations for m in convs)
    d.train()
    for _ in range(30):  # power iteration converges: the largest singular value of W/sigma is 1
        d(torch.randn(2, 1, 28, 28), torch.tensor([0, 1]))
    conv = d.blocks[1].wrap[1]
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_one_manual_step_changes_both_networks(judge_path):
    torch.manual_seed(0)
    model = DigitGAN(GANConfig(dim=8, z_dim=16))
    trainer = __import__("pytorch_lightning").Trainer(
        max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    images, labels = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=8)
    trainer.fit(model, train_dataloaders=loader)
    assert any(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters(), strict=True))
    assert model.ema.n_averaged.item() == 1  # one generator step (global_step counts both optimisers)


def test_mode_seeking_loss_is_msgan_eq_3():
    from tasks.gan.losses import mode_seeking_loss

    fake, z = torch.randn(6, 1, 4, 4), torch.randn(6, 5)
    ratio = (fake[:3] - fake[3:]).abs().mean() / (z[:3] - z[3:]).abs().mean()
    torch.testing.assert_close(mode_seeking_loss(fake, z), 1 / (ratio + 1e-5))


def test_variety_floor_pushes_only_pairs_closer_than_real_digits_of_their_class():
    from tasks.gan.losses import variety_floor_loss

    base = torch.zeros(3, 1, 2, 2)
    second = base + torch.tensor([0.0, 0.1, 0.4]).view(3, 1, 1, 1)  # pair distances 0, 0.1, 0.4
    spread = torch.tensor([0.2, 0.2, 0.2])
    # relu(1 - d / s): 1 for a collapsed pair, 0.5 at half the real spread, 0 beyond it
    torch.testing.assert_close(variety_floor_loss(torch.cat([base, second]), spread), torch.tensor((1 + 0.5 + 0) / 3))


def test_real_spread_is_the_mean_l1_distance_between_two_real_digits_of_a_class():
    floor = DigitGAN(GANConfig(dim=8, z_dim=16)).g_losses[1]
    assert isinstance(floor, VarietyFloor)
    real, y = torch.rand(12, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 2] * 4)
    floor.observe(real[:6], y[:6])
    floor.observe(real[6:], y[6:])  # the running mean pools the batches' pairs
    for c in range(3):
        digits = real[y == c].flatten(1)
        same_batch = [(i, j) for i in range(4) for j in range(4) if i != j and i // 2 == j // 2]
        pairs = [(digits[i] - digits[j]).abs().mean() for i, j in same_batch]
        torch.testing.assert_close(floor.real_spread(torch.tensor([c])), torch.stack(pairs).mean().view(1))
    assert floor.real_spread(torch.tensor([7])).item() == pytest.approx(1e-3)  # no digits yet: the clamp, not 0
    with pytest.raises(ValueError, match=r"VarietyFloor needs classes or clusters.*--model.g_losses"):
        DigitGAN(GANConfig(dim=8, z_dim=16), condition=Codes(10))


def test_generator_losses_are_a_list_of_their_own_modules():
    model = DigitGAN(GANConfig(dim=8, z_dim=16), g_losses=[ModeSeeking(0.5)])
    assert [type(t).__name__ for t in model.g_losses] == ["ModeSeeking"] and model.g_losses[0].weight == 0.5
    default = DigitGAN(GANConfig(dim=8, z_dim=16))
    assert [(type(t).__name__, t.weight) for t in default.g_losses] == [("ModeSeeking", 0.3), ("VarietyFloor", 7.0)]
    assert "g_losses.1.real_distance" in default.state_dict()  # the floor's running sums travel with the model
    with pytest.raises(ValueError, match="cannot be negative"):
        ModeSeeking(-1.0)


def test_the_judge_trains_from_its_own_seed_and_gives_the_callers_randomness_back(monkeypatch):
    import os
    import random

    from tasks.data.reproducible import fixed_randomness

    monkeypatch.setenv("PL_GLOBAL_SEED", "42")
    torch.manual_seed(42), random.seed(42)
    draws = []
    for _ in range(2):
        with fixed_randomness(0):
            draws.append((torch.rand(3), random.random(), os.environ["PL_GLOBAL_SEED"]))
    assert torch.equal(draws[0][0], draws[1][0]) and draws[0][1:] == draws[1][1:] == (draws[0][1], "0")
    after = torch.rand(3), random.random(), os.environ["PL_GLOBAL_SEED"]
    torch.manual_seed(42), random.seed(42)
    assert torch.equal(after[0], torch.rand(3)) and after[1:] == (random.random(), "42")  # as if nothing had run


UNCONDITIONAL = {"condition": None, "g_losses": [ModeSeeking(0.3)]}


def fit_one_step(model: DigitGAN) -> None:
    """One D and one G step on a batch of 8 random images labelled 0..7."""
    trainer = __import__("pytorch_lightning").Trainer(
        max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    images, labels = torch.randn(8, 1, 28, 28), torch.arange(8)
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels), batch_size=8))  # fmt: skip


def test_mode_seeking_step_pairs_noises_with_the_same_labels(judge_path, monkeypatch):
    torch.manual_seed(0)
    model = DigitGAN(GANConfig(dim=8, z_dim=16), g_losses=[ModeSeeking(1.0)])
    seen = []
    original = model.generator.forward
    monkeypatch.setattr(model.generator, "forward", lambda z, y=None: seen.append(y) or original(z, y))
    fit_one_step(model)
    assert len(seen) == 1  # one forward of G serves D's step and G's
    assert torch.equal(seen[0], torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))


def test_mode_seeking_step_pairs_noises_with_the_same_codes(monkeypatch):
    torch.manual_seed(0)
    model = DigitGAN(GANConfig(dim=8, z_dim=16), condition=Codes(10), g_losses=[ModeSeeking(1.0)])
    seen = []
    original = model.generator.forward
    monkeypatch.setattr(model.generator, "forward", lambda z, y=None: seen.append((z, y)) or original(z, y))
    fit_one_step(model)
    ((z, codes),) = seen
    assert torch.equal(codes[:4], codes[4:]) and not torch.equal(z[:4], z[4:])


def test_truncate_maps_the_normal_onto_the_normal_cut_at_t():
    from tasks.gan.sampling import truncate

    z = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t in (0.5, 1.0, 2.0):
        cut = truncate(z, t)
        assert cut.abs().max() <= t
        # the variance of N(0, 1) truncated to [-t, t]: 1 - 2 t phi(t) / (2 Phi(t) - 1)
        phi, Phi = math.exp(-(t**2) / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(t / math.sqrt(2)))
        assert cut.var().item() == pytest.approx(1 - 2 * t * phi / (2 * Phi - 1), rel=0.02)
        assert torch.equal(cut.argsort(), z.argsort())  # quantile for quantile: the order of the noises holds
    assert truncate(torch.zeros(3), 0.7).abs().max() < 1e-6  # the median stays the median


def test_truncation_applies_to_samples_only(monkeypatch):
    torch.manual_seed(0)
    model = DigitGAN(GANConfig(dim=8, z_dim=16), sampling=Sampling(truncation=0.5))
    seen = []
    original = model.ema.forward
    monkeypatch.setattr(model.ema, "forward", lambda z, y=None: seen.append(z) or original(z, y))
    z = 3 * torch.randn(4, 16)
    model.sample(z, torch.arange(4))
    assert seen[0].abs().max() <= 0.5
    assert torch.equal(seen[0].argsort(dim=1), z.argsort(dim=1))
    with pytest.raises(ValueError, match="must be positive"):
        Sampling(truncation=0.0)


def test_best_of_keeps_the_draw_whose_condition_d_is_most_confident_of(monkeypatch):
    from tasks.gan.sampling import most_confident

    model = DigitGAN(GANConfig(dim=8, z_dim=16), condition=Classes(2))
    digits = torch.stack([torch.full((2, 1, 28, 28), v) for v in (0.1, 0.5, 0.9)])  # 3 draws of 2 digits
    asked = []

    def head(x, y=None):  # class 0 is surest of the darkest digit, class 1 of the brightest
        asked.append(y)
        return x.mean((1, 2, 3)), torch.stack([-x.mean((1, 2, 3)), x.mean((1, 2, 3))], dim=1)

    monkeypatch.setattr(model.discriminator, "score_and_logits", head)
    kept = most_confident(digits, torch.tensor([0, 1]), model.discriminator)
    assert kept[0].unique().tolist() == pytest.approx([0.1]) and kept[1].unique().tolist() == pytest.approx([0.9])
    assert asked[0].tolist() == [0, 1, 0, 1, 0, 1]  # each draw is ranked for its own digit's class


def test_best_of_draws_keep_the_code_and_roll_the_rest_of_the_noise(monkeypatch):
    torch.manual_seed(0)
    model = DigitGAN(
        GANConfig(dim=8, z_dim=16), condition=Codes(4, loss=0.5), g_losses=[], sampling=Sampling(best_of=3)
    )
    seen = []
    original = model.ema.forward
    monkeypatch.setattr(model.ema, "forward", lambda z, y=None: seen.append((z, y)) or original(z, y))

    def power_vectors() -> list[torch.Tensor]:
        return [b.clone() for name, b in model.discriminator.named_buffers() if name.endswith("_u")]

    before = power_vectors()
    z = torch.randn(5, 16)
    assert model.sample(z).shape == (5, 1, 28, 28)
    ((draws, codes),) = seen
    for j, draw in enumerate(draws.chunk(3)):
        assert torch.equal(draw[:, :4], z[:, :4]) and torch.equal(draw[:, 4:], z[:, 4:].roll(j, dims=1))
    assert torch.equal(codes, z[:, :4].argmax(dim=1).repeat(3))
    assert model.discriminator.training  # ranking left D as it was, and its spectral norm's vectors too
    assert all(torch.equal(a, b) for a, b in zip(before, power_vectors(), strict=True))
    with pytest.raises(ValueError, match="at least 1"):
        Sampling(best_of=0)
    for options in (UNCONDITIONAL, {"condition": Classes(loss=0.0)}):
        with pytest.raises(ValueError, match="class head"):
            DigitGAN(GANConfig(dim=8, z_dim=16), **options, sampling=Sampling(best_of=2))


def test_a_code_drawn_with_the_noise_is_uniform_and_survives_truncation():
    from tasks.gan.sampling import truncate

    codes = Codes(10)
    z = torch.randn(100_000, 16, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(codes.fake(z, None), minlength=10)
    assert counts.min() > 9_600 and counts.max() < 10_400  # 10,000 each, +-4 sigma
    assert torch.equal(codes.fake(truncate(z, 1.0), None), codes.fake(z, None))


def test_infogan_code_loss_is_cross_entropy_of_d_head_for_both_players():
    torch.manual_seed(0)
    model = DigitGAN(GANConfig(dim=8, z_dim=16), condition=Codes(10, loss=0.5), g_losses=[])
    d = model.discriminator.eval()  # spectral norm's power iteration holds still, so each call is the same
    assert d.embed is None and d.classifier is not None  # Q head, no projection
    real, fake = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    code = torch.tensor([0, 3, 3, 9])
    score, logits = d.score_and_logits(fake)
    z = torch.randn(4, 16)
    torch.testing.assert_close(model.g_loss(fake, z, code), -score.mean() + 0.5 * F.cross_entropy(logits, code))
    real_score = d(real)
    hinge = F.relu(1 - real_score).mean() + F.relu(1 + score).mean()
    torch.testing.assert_close(model.d_loss(real, fake, None, code), hinge + 0.5 * F.cross_entropy(logits, code))


def test_infogan_generator_reads_the_code_of_its_noise(monkeypatch):
    model = DigitGAN(GANConfig(dim=8, z_dim=16), condition=Codes(10), g_losses=[])
    seen = []
    original = model.ema.forward
    monkeypatch.setattr(model.ema, "forward", lambda z, y=None: seen.append(y) or original(z, y))
    z = torch.randn(6, 16)
    model.sample(z)
    assert torch.equal(seen[0], z[:, :10].argmax(dim=1))
    with pytest.raises(ValueError, match="at most z_dim=8"):
        DigitGAN(GANConfig(dim=8, z_dim=8), condition=Codes(10), g_losses=[])


def test_clusters_of_real_digits_are_their_nearest_k_means_centroids():
    """Two kinds of image, labelled at random: k-means finds the kinds (the labels are not read)."""
    from tasks.gan.conditioning import kmeans_centroids, nearest_centroid

    torch.manual_seed(0)
    model = DigitGAN(GANConfig(dim=8, z_dim=16), condition=Clusters(2), g_losses=[])
    dark, bright = torch.full((1, 28, 28), -1.0), torch.full((1, 28, 28), 1.0)
    images = torch.stack([dark + 0.1 * torch.randn(1, 28, 28) for _ in range(6)] + [bright] * 4)
    normalised = ((images + 1) / 2 - MEAN) / STD  # as the data module gives them
    dataset = torch.utils.data.TensorDataset(normalised, torch.randint(10, (10,)))
    model.centroids.copy_(kmeans_centroids(dataset, 2))
    kinds = nearest_centroid(images, model.centroids)
    assert kinds[:6].unique().numel() == 1 and kinds[6:].unique().numel() == 1 and kinds[0] != kinds[6]
    torch.testing.assert_close(model.centroids[kinds[6]], torch.ones(784))
    torch.testing.assert_close(model.centroids[kinds[0]], images[:6].flatten(1).mean(0))


def test_cluster_step_projects_reals_on_their_cluster_and_fakes_on_the_cluster_of_their_noise(monkeypatch):
    torch.manual_seed(0)
    model = DigitGAN(GANConfig(dim=8, z_dim=16), condition=Clusters(3), g_losses=[ModeSeeking(1.0)])
    d = model.discriminator
    assert d.embed.num_embeddings == 3 and d.classifier.out_features == 3  # projection and class head
    centroids = torch.stack([torch.full((784,), v) for v in (-1.0, 0.0, 1.0)])
    monkeypatch.setattr("tasks.gan.module.kmeans_centroids", lambda dataset, k: centroids)
    seen_g, seen_d = [], []
    g_forward, d_forward = model.generator.forward, d.score_and_logits
    monkeypatch.setattr(model.generator, "forward", lambda z, y=None: seen_g.append((z, y)) or g_forward(z, y))
    monkeypatch.setattr(d, "score_and_logits", lambda x, y=None: seen_d.append((x, y)) or d_forward(x, y))
    fit_one_step(model)  # 8 N(0, 1) images, -0.74 on average in [-1, 1]: each nearest the -1 centroid
    torch.testing.assert_close(model.centroids, centroids)  # fitted when training started
    (z, clusters), (_, y) = seen_g[0], seen_d[0]
    assert torch.equal(clusters, z[:, :3].argmax(dim=1)) and torch.equal(clusters[:4], clusters[4:])  # pairs share
    assert torch.equal(y, torch.cat([torch.zeros(8, dtype=torch.long), clusters]))
    assert torch.equal(seen_d[1][1], clusters)  # G's step: the same fakes, the same clusters
    with pytest.raises(ValueError, match="at least 2"):
        Clusters(1)


def test_cluster_centroids_are_fitted_once_and_resume_with_the_checkpoint(tmp_path, monkeypatch):
    import pytorch_lightning as pl

    def trainer(steps: int) -> pl.Trainer:
        return pl.Trainer(
            max_steps=steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        )  # fmt: skip

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 1, 28, 28), torch.arange(8)))
    model = DigitGAN(GANConfig(dim=8, z_dim=16), condition=Clusters(2), g_losses=[])
    first = trainer(2)
    first.fit(model, train_dataloaders=data)
    assert model.centroids.any()
    first.save_checkpoint(tmp_path / "run.ckpt")
    resumed = DigitGAN(GANConfig(dim=8, z_dim=16), condition=Clusters(2), g_losses=[])
    monkeypatch.setattr(
        "tasks.gan.module.kmeans_centroids", lambda dataset, k: pytest.fail("a resumed run fitted again")
    )
    trainer(4).fit(resumed, train_dataloaders=data, ckpt_path=tmp_path / "run.ckpt", weights_only=False)  # our own file
    assert torch.equal(resumed.centroids, model.centroids)


def test_class_input_and_discriminator_width_options():
    gan = GANConfig(dim=8, z_dim=16, class_input=False, d_dim=16).build(conditions=10, projection=True)
    g, d = gan.generator, gan.discriminator
    assert g.embed is None and g.fc.in_features == 16
    narrow = GANConfig(dim=8).build(conditions=10, projection=True).discriminator
    assert sum(p.numel() for p in d.parameters()) > sum(p.numel() for p in narrow.parameters())
    y = torch.tensor([1, 2])
    assert g(torch.randn(2, 16), y).shape == (2, 1, 28, 28)


def test_channels_last_changes_the_layout_not_the_function():
    torch.manual_seed(0)
    nhwc = DigitGAN(GANConfig(dim=8, z_dim=16), **UNCONDITIONAL)
    nchw = DigitGAN(GANConfig(dim=8, z_dim=16), **UNCONDITIONAL, channels_last=False)
    nchw.load_state_dict(nhwc.state_dict())
    conv = nhwc.generator.blocks[0].wrap.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    nhwc.eval(), nchw.eval()
    z = torch.randn(4, 16)
    torch.testing.assert_close(nhwc.generator(z), nchw.generator(z))
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(nhwc.discriminator(images), nchw.discriminator(images))


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
def test_class_loss_is_cross_entropy_of_the_critic_head(arch):
    """AC-GAN's term: L_G(loss=w) - L_G(0) = w * CE(V h(fake), y); L_D adds it on the real half only."""
    torch.manual_seed(0)
    model = DigitGAN(GANConfig(arch, dim=8, z_dim=16), condition=Classes(loss=0.5), g_losses=[])
    plain = DigitGAN(GANConfig(arch, dim=8, z_dim=16), condition=Classes(loss=0.0), g_losses=[])
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()  # freeze spectral norm's power iteration so both see the same weights
    real, fake, y = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1, torch.arange(4)
    z = torch.randn(4, 16)
    h = model.discriminator.features(fake)
    expected = 0.5 * F.cross_entropy(model.discriminator.classifier(h), y)
    torch.testing.assert_close(model.g_loss(fake, z, y) - plain.g_loss(fake, z, y), expected)
    h_real = model.discriminator.features(real)
    expected_d = 0.5 * F.cross_entropy(model.discriminator.classifier(h_real), y)
    torch.testing.assert_close(model.d_loss(real, fake, y, y) - plain.d_loss(real, fake, y, y), expected_d)


def test_an_unconditional_gan_has_no_class_head_and_reads_z_alone():
    model = DigitGAN(GANConfig(dim=8, z_dim=16), **UNCONDITIONAL)
    assert model.discriminator.classifier is None and model.discriminator.embed is None
    assert model.generator.embed is None and model.asked(4) is None


def test_judge_stays_in_eval_mode_and_frozen_and_out_of_the_gan(judge_path):
    judge = DigitClassifier(load_digit_classifier(judge_path))
    quality = DigitQuality(judge)
    quality.train()
    assert not judge.training and not any(m.training for m in judge.modules())
    assert not any(p.requires_grad for p in judge.parameters())
    gan = DigitGAN(GANConfig(dim=8, z_dim=16))
    assert not any(
        "classifier." in k or "fid" in k for k in gan.state_dict() if not k.startswith("net.discriminator")
    )  # the GAN holds no evaluation weights


def test_digit_quality_scores_against_its_formulas(judge_path):
    """recognisable = share with confidence >= 0.9, entropy of the judge's label histogram, label accuracy."""
    judge = DigitClassifier(load_digit_classifier(judge_path))
    quality = DigitQuality(judge, confidence=0.9)
    real, fake = torch.rand(40, 1, 28, 28), torch.rand(40, 1, 28, 28)
    y = torch.arange(40) % 10
    quality.update(real, real=True, labels=y)
    quality.update(fake, real=False, labels=y)
    got = quality.compute()
    conf, pred = judge.logits(fake).softmax(-1).max(-1)
    hist = torch.bincount(pred, minlength=10).float() / 40
    p = hist[hist > 0]
    assert got["recognisable"].item() == pytest.approx((conf >= 0.9).float().mean().item())
    assert got["class_entropy"].item() == pytest.approx(-(p * p.log()).sum().item(), rel=1e-5)
    assert got["label_acc"].item() == pytest.approx((pred == y).float().mean().item())
    assert got["digit_fid"].item() > 0


def test_precision_and_recall_follow_kynkaanniemi():
    """Fake points inside the real k-NN balls count for precision; real points inside fake balls for recall."""
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
    fake = torch.tensor([[0.5, 0.4], [0.1, 0.1], [9.0, 9.0], [9.1, 9.0], [9.0, 9.1], [9.1, 9.1]])
    precision, recall = precision_recall(real, fake, k=1)
    assert precision.item() == pytest.approx(2 / 6)  # the four far points lie outside every real ball
    # fake balls (k=1): radius 0.5 around the two near points, 0.1 around the far ones
    assert recall.item() == pytest.approx(2 / 5)  # (0, 0) and (0.5, 0.5)


def test_within_class_spread_is_the_mean_squared_distance_to_the_centroid():
    features = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0], [5.0, 7.0], [5.0, 9.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    spread = within_class_spread(features, labels, classes=2)
    torch.testing.assert_close(spread, torch.tensor([1.0, 8 / 3]))


def test_one_digit_per_class_has_no_variety(judge_path):
    judge = DigitClassifier(load_digit_classifier(judge_path))
    quality = DigitQuality(judge)
    real, y = torch.rand(40, 1, 28, 28), torch.arange(40) % 10
    quality.update(real, real=True, labels=y)
    quality.update(real[:10][y[:10]].repeat(4, 1, 1, 1), real=False, labels=y[:10].repeat(4))  # one image a class
    got = quality.compute()
    assert got["variety"].item() == pytest.approx(0.0, abs=1e-6) and got["variety_min"].item() == pytest.approx(0.0)
    quality.reset()
    quality.update(real, real=True, labels=y)
    quality.update(real, real=False, labels=y)  # the real digits themselves: as varied as real
    got = quality.compute()
    assert got["variety"].item() == pytest.approx(1.0) and got["precision"].item() == 1.0


def test_variety_divides_by_the_reference_digits_spread_once_set(judge_path):
    quality = DigitQuality(DigitClassifier(load_digit_classifier(judge_path)))
    reference, y = torch.rand(40, 1, 28, 28), torch.arange(40) % 10
    quality.set_reference(reference, y)
    quality.update(torch.zeros(20, 1, 28, 28), real=True, labels=y[:20])  # held-out real digits: no spread at all
    quality.update(reference, real=False, labels=y)  # generated = the reference digits
    got = quality.compute()
    assert got["variety"].item() == pytest.approx(1.0) and got["variety_min"].item() == pytest.approx(1.0)


def test_digit_fid_real_vs_real_is_small_and_noise_vs_real_large(judge_path):
    from tasks.data import ImageDataModule

    dm = ImageDataModule("mnist", source="embedded", augment=False)
    dm.setup("fit")
    evaluation = GANEvaluation(judge_path)
    evaluation.quality = DigitQuality(DigitClassifier(load_digit_classifier(judge_path)))
    train = dm.train_set.images[:1000]
    floor = evaluation.real_floor(train, dm.test_set.images)
    noise = evaluation.real_floor(train, (torch.rand(500, 1, 28, 28) * 255).to(torch.uint8))
    assert floor < 0.05 * noise, (floor, noise)


def test_features_match_the_classifier():
    net = create_model("resnet20", in_channels=1, num_classes=10).eval()
    judge = DigitClassifier(net)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(judge.logits(x), net((x - 0.1307) / 0.3081))
    assert judge(x).shape == (3, judge.num_features)


def test_the_judge_is_the_shipped_digit_network_and_reads_a_fixed_batch_the_same_everywhere():
    """The same generator's digits score the same on every machine: the judge's logits on a fixed batch are the
    stored ones (to 1e-4, float rounding between CPUs), and it is the network that ships."""
    judge = DigitClassifier(load_digit_classifier(None))
    torch.testing.assert_close(judge.net.state_dict(), create_model("resnet20", pretrained="digits").state_dict())
    x = torch.linspace(0, 1, 4 * 28 * 28).reshape(4, 1, 28, 28).sin().abs()  # a batch any machine makes alike
    logits = judge.logits(x)
    assert logits.shape == (4, 10)
    torch.testing.assert_close(logits[:, :4], torch.tensor(JUDGE_LOGITS), atol=1e-4, rtol=1e-4)


def test_cli_fit_fast_dev_run_then_predict_writes_files(tmp_path, judge_path, monkeypatch):
    args = ["--data.source=embedded", "--data.batch_size=8", "--model.net.dim=8", "--model.net.z_dim=16",
            f"--evaluation.classifier_path={judge_path}", "--evaluation.samples=16",
            "--evaluation.test_samples=24"]  # fmt: skip
    scored: list[int] = []
    update = DigitQuality.update

    def counting_update(quality, images, real, labels=None):
        if not real:
            scored.append(len(images))
        update(quality, images, real, labels)

    monkeypatch.setattr(DigitQuality, "update", counting_update)
    cli = cli_main(["fit", *args, "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}"])
    assert scored == [16, 24]  # generated digits scored at validation, then at test
    metrics = cli.trainer.callback_metrics
    assert {"test/digit_fid", "test/label_acc", "test/digit_fid_floor", "test/recognisable"} <= set(metrics)
    assert {"test/precision", "test/recall", "test/variety", "test/variety_min", "test/legible_fid"} <= set(metrics)
    assert (tmp_path / "samples.png").exists()
    from PIL import Image

    picture = Image.open(tmp_path / "variety.png")  # two classes: 4 x 8 generated beside 4 x 8 real, each
    assert picture.width > 2 * 8 * 28 and picture.height > 2 * 4 * 28
    ckpt = tmp_path / "gan.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    out = tmp_path / "out"
    cli_main(["predict", *args, f"--ckpt_path={ckpt}", "--data.num_samples=12", f"--predictions.output_dir={out}"])
    assert (out / "grid.png").exists() and (out / "interpolation.png").exists()
    assert len(list((out / "digits").glob("*.png"))) == 12


def test_predict_draws_the_requested_labels(tmp_path, judge_path, monkeypatch):
    """--data.labels reaches the generator: each requested digit is the class it is drawn for."""
    args = ["--data.source=embedded", "--model.net.dim=8", "--model.net.z_dim=16"]
    cli = cli_main(["fit", *args, f"--evaluation.classifier_path={judge_path}", "--trainer.fast_dev_run=true",
                    "--test_after_fit=false"])  # fmt: skip
    ckpt = tmp_path / "gan.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    asked: list[torch.Tensor] = []
    sample = DigitGAN.sample
    monkeypatch.setattr(DigitGAN, "sample", lambda self, z, y=None: asked.append(y) or sample(self, z, y))
    out = tmp_path / "drawn"
    cli_main(["predict", *args, f"--ckpt_path={ckpt}", "--data.labels=[3, 3, 7]", f"--predictions.output_dir={out}"])
    assert asked[0].tolist() == [3, 3, 7]
    assert len(list((out / "digits").glob("*.png"))) == 3


def test_cli_unconditional_config(tmp_path, judge_path):
    """configs/gan_unconditional.yaml, as a user types it: no labels, clusters of the training digits, G at 8e-4,
    the best of 2 draws, no label accuracy."""
    config = Path(__file__).parents[1] / "configs" / "gan_unconditional.yaml"
    args = ["--data.source=embedded", "--data.batch_size=8", "--model.net.dim=8", "--model.net.z_dim=64",
            f"--evaluation.classifier_path={judge_path}", "--evaluation.samples=16",
            "--evaluation.test_samples=16"]  # fmt: skip
    cli = cli_main(["fit", f"--config={config}", *args, "--trainer.fast_dev_run=true"])
    model = cli.model
    assert isinstance(model.condition, Clusters) and model.condition.size == 50 and model.condition.loss == 0.5
    assert model.hparams.lr_g == pytest.approx(8e-4) and model.sampling.best_of == 2
    assert [(type(t).__name__, t.weight) for t in model.g_losses] == [("ModeSeeking", 0.3)]
    assert model.centroids.any()
    assert "test/digit_fid" in cli.trainer.callback_metrics and "test/label_acc" not in cli.trainer.callback_metrics


def test_generator_uses_residual_blocks():
    g = ResNetGenerator(16, 8)
    assert all(isinstance(b, Residual) for b in g.blocks)
