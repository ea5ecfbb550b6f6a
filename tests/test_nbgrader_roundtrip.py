"""The instructor's round trip with the real nbgrader: generate from solutions/, autograde, feedback.

A course directory in tmp_path gets solutions/01 as its source; three submissions are graded:
a solved copy (full marks), the untouched student copy (zero), and a copy whose mse_grad forgot the
2 from the square (exercise 1 loses its points, exercises 2 and 3 keep theirs). Feedback shows the
hidden tests' code by default and not with the configuration the README recommends.
"""

from __future__ import annotations

import html as html_lib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason="install the dev extras: pip install -e '.[dev]' (nbgrader==0.9.6)")
from jupyter_client.kernelspec import find_kernel_specs  # noqa: E402
from nbgrader.api import Gradebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "01_linear_regression"
ASSIGNMENT = "ch01"
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_LINE = "_X = _rng.normal(size=(7, 4))"   # a line of ex1's hidden tests

pytestmark = pytest.mark.slow


def nbgrader(course: Path, *args: str) -> str:
    # nbgrader runs `alembic` (its database migrations) from PATH: the environment's bin/ must be on it
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def _answers(wrong_mse_grad: bool) -> dict[str, str]:
    sol = nbformat.read(ROOT / "solutions" / f"{NOTEBOOK}.ipynb", as_version=4)
    out = {}
    for cell in sol.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            out[meta["grade_id"]] = "\n".join(line for line in cell.source.splitlines() if line.strip() not in MARKERS)
    if wrong_mse_grad:
        out["ex1_mse_grad"] = ("def mse_grad(X, y, w, b):\n    r = X @ w + b - y\n"
                               "    return X.T @ r / len(y), float(np.mean(r))   # forgot the 2\n")
    return out


def _submit(course: Path, student: str, answers: dict[str, str] | None) -> None:
    target = course / "submitted" / student / ASSIGNMENT
    target.mkdir(parents=True)
    nb = nbformat.read(course / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if answers and gid in answers:
            cell.source = answers[gid]
    nbformat.write(nb, target / f"{NOTEBOOK}.ipynb")


def _feedback_text(course: Path, student: str) -> str:
    raw = (course / "feedback" / student / ASSIGNMENT / f"{NOTEBOOK}.html").read_text()
    return html_lib.unescape(re.sub(r"<[^>]+>", "", raw))     # the code is syntax-highlighted in spans


def test_generate_autograde_and_feedback(tmp_path):
    course = tmp_path / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / f"{NOTEBOOK}.ipynb", course / "source" / ASSIGNMENT)
    kernel = "sftcourse" if "sftcourse" in find_kernel_specs() else "python3"
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'sftcourse'\n"
        "c.Execute.timeout = 600\n"
        f"c.Execute.kernel_name = {kernel!r}\n")

    nbgrader(course, "generate_assignment", ASSIGNMENT)
    released = nbformat.read(course / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    text = "\n".join(c.source for c in released.cells)
    assert "raise NotImplementedError()" in text and HIDDEN_LINE not in text and "BEGIN SOLUTION" not in text

    _submit(course, "solved", _answers(wrong_mse_grad=False))
    _submit(course, "untouched", None)
    _submit(course, "slipped", _answers(wrong_mse_grad=True))
    nbgrader(course, "autograde", ASSIGNMENT, "--create")

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        def scores(student: str) -> dict[str, float]:
            nb = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
            return {g.name: g.score for g in nb.grades if g.max_score}
        max_scores = {g.name: g.max_score for g in gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, "solved").grades
                      if g.max_score}
        assert max_scores == {"ex1_test": 2, "ex2_test": 3, "ex3_test": 3}
        assert scores("solved") == max_scores, "a solved copy gets full marks"
        assert set(scores("untouched").values()) == {0}, "an untouched copy gets zero"
        assert scores("slipped") == {"ex1_test": 0, "ex2_test": 3, "ex3_test": 3}, \
            "a wrong mse_grad loses exercise 1 only (exercise 2 uses the library's gradient)"

    slipped = nbformat.read(course / "autograded" / "slipped" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    errors = [o for c in slipped.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors and "forget the 2" in errors[0].evalue, "the failed cell carries the check's sentence"

    # Feedback: nbgrader's default shows the hidden tests; the README's configuration removes them.
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--student", "slipped")
    assert HIDDEN_LINE in _feedback_text(course, "slipped"), "nbgrader's default feedback shows hidden tests"
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--student", "slipped", "--force",
             '--GenerateFeedback.preprocessors=["nbgrader.preprocessors.GetGrades",'
             '"nbgrader.preprocessors.ClearHiddenTests","nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]')
    text = _feedback_text(course, "slipped")
    assert HIDDEN_LINE not in text and "forget the 2" in text
