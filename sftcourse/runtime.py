"""Device, seed, profile and cache location: the explicit runtime choices of a notebook."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch

Profile = Literal["quick", "full"]
PROFILES: tuple[Profile, ...] = ("quick", "full")
PROFILE_ENV = "SFTCOURSE_PROFILE"
CACHE_ENV = "SFTCOURSE_CACHE"

T = TypeVar("T")


def as_device(device: object, name: str = "device") -> torch.device:
    """``device`` ("cpu", "cuda:0", a torch.device) as a torch.device, with a clear error for a bad name."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"{name} must be a device name like 'cpu' or 'cuda' (or a torch.device), "
                        f"got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:0' or 'mps' "
                         "(get_device() picks what this machine has)") from None


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return ``prefer`` if given, else the best available device: cuda, then mps, then cpu."""
    if prefer is not None:
        device = as_device(prefer, "prefer")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was requested but CUDA is not available here; "
                             "use get_device() to pick what this machine has.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> int:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and CUDA); return the seed."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (torch and NumPy take non-negative seeds), got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def get_profile(env: dict[str, str] | None = None) -> Profile:
    """The course profile: ``SFTCOURSE_PROFILE`` if set, else 'full' with CUDA and 'quick' without."""
    env = os.environ if env is None else env
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of environment variables (like os.environ), got {type(env).__name__}")
    value = str(env.get(PROFILE_ENV, "")).strip().lower()
    if value:
        if value not in PROFILES:
            raise ValueError(f"{PROFILE_ENV}={value!r} is not a profile; use one of {', '.join(PROFILES)}.")
        return value  # type: ignore[return-value]
    return "full" if torch.cuda.is_available() else "quick"


def check_profile(profile: object, name: str = "profile") -> Profile:
    """``profile`` itself if it is one of :data:`PROFILES` (exactly: "Quick" is an error), else ValueError."""
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ValueError(f"{name} must be one of {', '.join(repr(p) for p in PROFILES)}, got {profile!r}; "
                         "get_profile() reads it from SFTCOURSE_PROFILE")
    return profile  # type: ignore[return-value]


def use_profile(profile: str) -> Profile:
    """Switch the profile of this Python process (a notebook's kernel) and return it.

    Sets ``SFTCOURSE_PROFILE`` in ``os.environ``, which :func:`get_profile` reads; call it, or run
    ``%env SFTCOURSE_PROFILE=full``, before the notebook's setup cell, then run the notebook from
    there. Restarting the kernel alone does not switch: a new kernel inherits the environment of the
    Jupyter server, not the variable set in the old kernel.
    """
    if not isinstance(profile, str):
        raise TypeError(f"profile must be a str, one of {', '.join(PROFILES)}, got {type(profile).__name__}")
    value = profile.strip().lower()
    if value not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    os.environ[PROFILE_ENV] = value
    return value  # type: ignore[return-value]


def pick(profile: Profile, *, quick: T, full: T) -> T:
    """Return the value for ``profile``: a chapter's sizes live side by side in one call."""
    return quick if check_profile(profile) == "quick" else full


def banner(profile: Profile, device: torch.device | str) -> str:
    """One line a notebook prints: which profile runs, on what, and how to switch."""
    other = "full" if check_profile(profile) == "quick" else "quick"
    what = ("the GPU-sized run with real pretrained models and datasets" if other == "full"
            else "the small offline run that fits a laptop CPU")
    return (f"profile {profile} on {as_device(device).type} — for {what}, run "
            f"`%env {PROFILE_ENV}={other}` in a cell above this one (or "
            f"sftcourse.runtime.use_profile('{other}')), then run the notebook again from this cell")


def cache_dir(subdir: str | None = None) -> Path:
    """The course's one cache root (``SFTCOURSE_CACHE``, else the user cache dir), created on demand.

    ``subdir`` (e.g. "models") is one folder name inside it.
    """
    if subdir is not None and (not isinstance(subdir, str) or not subdir or Path(subdir).is_absolute()
                               or ".." in Path(subdir).parts):
        raise ValueError(f"subdir must be a folder name inside the cache such as 'models', got {subdir!r}")
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "sftcourse"
    path = base / subdir if subdir else base
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"the cache folder {path} cannot be created: a file is in the way; set {CACHE_ENV} "
                         "to a folder") from None
    return path


def versions() -> str:
    """A one-line summary of the library versions a notebook depends on (without importing them)."""
    parts = [f"python {sys.version.split()[0]}", f"numpy {np.__version__}", f"torch {torch.__version__}"]
    for name in ("transformers",):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:  # pragma: no cover - a dependency, but reading metadata must not fail
            pass
    return ", ".join(parts)
