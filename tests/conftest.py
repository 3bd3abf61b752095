"""Fixtures shared by the GAN, resume and DDP tests."""

from __future__ import annotations

import pytest
import torch

from residual_kit.models import create_model


@pytest.fixture(scope="session")
def judge_path(tmp_path_factory) -> str:
    """An (untrained) ResNet-20 state dict: enough to test the plumbing without training a judge."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("judge") / "judge.pt"
    torch.save(create_model("resnet20", in_channels=1, num_classes=10).state_dict(), path)
    return str(path)
