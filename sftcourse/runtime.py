"""Device, seed, profile and cache location: the explicit runtime choices of a notebook."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch

Profile = Literal["quick", "full"]
PROFILES: tuple[Profile, ...] = ("quick", "full")
PROFILE_ENV = "SFTCOURSE_PROFILE"
CACHE_ENV = "SFTCOURSE_CACHE"

T = TypeVar("T")


def get_device(prefer: str | None = None) -> torch.device:
    """Return ``prefer`` if given, else the best available device: cuda, then mps, then cpu."""
    if prefer is not None:
        device = torch.device(prefer)
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
        raise ValueError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def get_profile(env: dict[str, str] | None = None) -> Profile:
    """The course profile: ``SFTCOURSE_PROFILE`` if set, else 'full' with CUDA and 'quick' without."""
    env = os.environ if env is None else env
    value = env.get(PROFILE_ENV, "").strip().lower()
    if value:
        if value not in PROFILES:
            raise ValueError(f"{PROFILE_ENV}={value!r} is not a profile; use one of {', '.join(PROFILES)}.")
        return value  # type: ignore[return-value]
    return "full" if torch.cuda.is_available() else "quick"


def use_profile(profile: str) -> Profile:
    """Switch the profile of this Python process (a notebook's kernel) and return it.

    Sets ``SFTCOURSE_PROFILE`` in ``os.environ``, which :func:`get_profile` reads; call it, or run
    ``%env SFTCOURSE_PROFILE=full``, before the notebook's setup cell, then run the notebook from
    there. Restarting the kernel alone does not switch: a new kernel inherits the environment of the
    Jupyter server, not the variable set in the old kernel.
    """
    value = str(profile).strip().lower()
    if value not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    os.environ[PROFILE_ENV] = value
    return value  # type: ignore[return-value]


def pick(profile: Profile, *, quick: T, full: T) -> T:
    """Return the value for ``profile``: a chapter's sizes live side by side in one call."""
    if profile == "quick":
        return quick
    if profile == "full":
        return full
    raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")


def banner(profile: Profile, device: torch.device | str) -> str:
    """One line a notebook prints: which profile runs, on what, and how to switch."""
    other = "full" if profile == "quick" else "quick"
    what = ("the GPU-sized run with real pretrained models and datasets" if other == "full"
            else "the small offline run that fits a laptop CPU")
    return (f"profile {profile} on {torch.device(device).type} — for {what}, run "
            f"`%env {PROFILE_ENV}={other}` in a cell above this one (or "
            f"sftcourse.runtime.use_profile('{other}')), then run the notebook again from this cell")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection within ``timeout`` s.

    False at once when ``HF_HUB_OFFLINE`` is set. Loaders ask this before a download so that an
    offline machine gets a clear error in seconds instead of the libraries' retries.
    """
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cache_dir(subdir: str | None = None) -> Path:
    """The course's one cache root (``SFTCOURSE_CACHE``, else the user cache dir), created on demand."""
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "sftcourse"
    path = base / subdir if subdir else base
    path.mkdir(parents=True, exist_ok=True)
    return path


def versions() -> str:
    """A one-line summary of the library versions a notebook depends on (without importing them)."""
    import sys
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {sys.version.split()[0]}", f"numpy {np.__version__}", f"torch {torch.__version__}"]
    for name in ("transformers",):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:  # pragma: no cover - a dependency, but reading metadata must not fail
            pass
    return ", ".join(parts)
