import random

import numpy as np
import pytest
import torch

from sftcourse.runtime import (
    PROFILES,
    as_device,
    banner,
    cache_dir,
    check_profile,
    get_device,
    get_profile,
    pick,
    set_seed,
    versions,
)


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
    assert line.startswith("profile quick on cpu") and "%env SFTCOURSE_PROFILE=full" in line
    assert "use_profile('full')" in line and "restart" not in line


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


def test_check_profile_and_versions():
    assert [check_profile(p) for p in PROFILES] == list(PROFILES)
    line = versions()
    assert line.startswith("python ") and "torch" in line


# ---------------------------------------------------------------------------
# Bad input: a clear error naming the argument


BAD_INPUTS = [
    ("as_device None", lambda tmp: as_device(None), TypeError, "device must be a device name"),
    ("as_device unknown", lambda tmp: as_device("tpu0"), ValueError, "device 'tpu0' is not a torch device"),
    ("device name unknown", lambda tmp: get_device("gpu"), ValueError, "device 'gpu' is not a torch device"),
    ("device int", lambda tmp: get_device(3), TypeError, "prefer must be a device name"),
    ("seed str", lambda tmp: set_seed("7"), ValueError, "seed must be an int"),
    ("seed float", lambda tmp: set_seed(1.5), ValueError, "seed must be an int"),
    ("seed None", lambda tmp: set_seed(None), ValueError, "seed must be an int"),
    ("seed bool", lambda tmp: set_seed(True), ValueError, "seed must be an int"),
    ("seed negative", lambda tmp: set_seed(-1), ValueError, "seed must be >= 0"),
    ("profile env unknown", lambda tmp: get_profile({"SFTCOURSE_PROFILE": "medium"}),
     ValueError, "use one of quick, full"),
    ("profile env not a mapping", lambda tmp: get_profile(["quick"]), TypeError, "env must be a mapping"),
    ("check_profile capitalised", lambda tmp: check_profile("Quick"),
     ValueError, "profile must be one of 'quick', 'full'"),
    ("check_profile None", lambda tmp: check_profile(None), ValueError, "profile must be one of"),
    ("pick capitalised", lambda tmp: pick("Quick", quick=1, full=2),
     ValueError, "profile must be one of 'quick', 'full'"),
    ("pick unknown", lambda tmp: pick("huge", quick=1, full=2), ValueError, "got 'huge'"),
    ("banner capitalised", lambda tmp: banner("Full", "cpu"), ValueError, "profile must be one of"),
    ("banner bad device", lambda tmp: banner("quick", "gpu"), ValueError, "device 'gpu' is not a torch device"),
    ("cache subdir empty", lambda tmp: cache_dir(""), ValueError, "subdir must be a folder name"),
    ("cache subdir escapes", lambda tmp: cache_dir("../elsewhere"), ValueError, "subdir must be a folder name"),
    ("cache subdir absolute", lambda tmp: cache_dir("/tmp/x"), ValueError, "subdir must be a folder name"),
    ("cache subdir int", lambda tmp: cache_dir(3), ValueError, "subdir must be a folder name"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(case, call, exc, match, tmp_path, monkeypatch):
    monkeypatch.setenv("SFTCOURSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(exc, match=match):
        call(tmp_path)


def test_cache_root_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("SFTCOURSE_CACHE", str(tmp_path / "afile"))
    with pytest.raises(ValueError, match="SFTCOURSE_CACHE"):
        cache_dir("models")


def test_use_profile_switches_this_process(monkeypatch):
    from sftcourse.runtime import use_profile
    monkeypatch.setenv("SFTCOURSE_PROFILE", "quick")
    assert use_profile(" FULL ") == "full" and get_profile() == "full"
    with pytest.raises(ValueError, match="one of quick, full"):
        use_profile("medium")


@pytest.mark.slow
def test_switching_profile_from_inside_a_notebook_kernel(monkeypatch):
    """What the banner tells a learner works in a real kernel; a restart alone does not switch."""
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("SFTCOURSE_PROFILE", "quick")     # the server's environment
    km, kc = start_new_kernel(kernel_name="python3")

    def profile_after(code: str) -> str:
        out: list[str] = []
        kc.execute_interactive(code + "\nfrom sftcourse.runtime import get_profile\nprint(get_profile())",
                               timeout=60, output_hook=lambda m: out.append(m["content"].get("text", "")))
        return "".join(out).split()[-1]

    try:
        assert profile_after("") == "quick"
        assert profile_after("%env SFTCOURSE_PROFILE=full") == "full"
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        assert profile_after("") == "quick"                # the restarted kernel has the server's value again
        assert profile_after("import sftcourse.runtime as rt\nrt.use_profile('full')") == "full"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
