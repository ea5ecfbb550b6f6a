import random

import numpy as np
import pytest
import torch

from sftcourse.runtime import banner, cache_dir, get_device, get_profile, pick, set_seed


def test_set_seed_makes_all_three_rngs_repeat():
    set_seed(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(123)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    set_seed(124)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) != a


def test_set_seed_rejects_non_int():
    with pytest.raises(ValueError, match="seed must be an int"):
        set_seed("7")


def test_profile_from_env_and_default():
    assert get_profile({"SFTCOURSE_PROFILE": "quick"}) == "quick"
    assert get_profile({"SFTCOURSE_PROFILE": " FULL "}) == "full"
    expected = "full" if torch.cuda.is_available() else "quick"
    assert get_profile({}) == expected
    with pytest.raises(ValueError, match="use one of quick, full"):
        get_profile({"SFTCOURSE_PROFILE": "medium"})


def test_pick_and_banner():
    assert pick("quick", quick=1, full=2) == 1
    assert pick("full", quick=1, full=2) == 2
    with pytest.raises(ValueError):
        pick("huge", quick=1, full=2)  # type: ignore[arg-type]
    line = banner("quick", torch.device("cpu"))
    assert line.startswith("profile quick on cpu") and "SFTCOURSE_PROFILE=full" in line


def test_get_device_prefers_cuda_then_mps_then_cpu():
    device = get_device()
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device.type == "cpu"
    assert get_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")


def test_cache_dir_respects_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTCOURSE_CACHE", str(tmp_path / "c"))
    path = cache_dir("models")
    assert path == tmp_path / "c" / "models" and path.is_dir()


def test_versions_names_the_libraries_without_importing_transformers():
    import subprocess
    import sys

    code = ("import sys; from sftcourse.runtime import versions; line = versions(); "
            "assert 'torch' in line and 'transformers' in line, line; "
            "assert 'transformers' not in sys.modules, 'versions() imported transformers'")
    subprocess.run([sys.executable, "-c", code], check=True)
