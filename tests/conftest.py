"""Shared pytest setup: the repository root on sys.path (for course.py), the quick profile, shared fixtures."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("SFTCOURSE_PROFILE", "quick")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture
def tiny_hf_resnet(tmp_path):
    """A Hugging Face ResNet folder in the Hub's format (save_pretrained + preprocessor_config.json), and the model."""
    import torch  # here, not at the top: tests/test_course.py runs without torch (e.g. on Python 3.10)
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                          layer_type="basic", num_labels=6)
    model = ResNetForImageClassification(config).eval()
    path = tmp_path / "tiny-resnet"
    model.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.2, 0.25], "crop_size": {"height": 64, "width": 64}}))
    return path, model


def pytest_collection_modifyitems(config, items):
    """Skip tests marked gpu when no CUDA device is present."""
    try:
        import torch
    except ModuleNotFoundError:  # an environment for tests/test_course.py only (e.g. Python 3.10, no torch)
        torch = None
    if torch is not None and torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
