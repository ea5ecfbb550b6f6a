"""The exercise pipeline: generator, nbgrader metadata, friendly checks, and stubs that fail."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from sftcourse.exercises import generate_all, make_exercise, nbgrader_problems
from sftcourse.grading import CheckError, check_array, check_scalar, check_true

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def _nbgrader(grade_id, *, solution=False, grade=False, locked=False, points=None):
    meta = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _toy_solution():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 00 · Toy"),
        nbformat.v4.new_code_cell(
            "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n",
            metadata=_nbgrader("double", solution=True)),
        nbformat.v4.new_code_cell(
            "assert double(2) == 4\n### BEGIN HIDDEN TESTS\nassert double(-1) == -2\n### END HIDDEN TESTS\n",
            metadata=_nbgrader("double_test", grade=True, locked=True, points=1)),
        nbformat.v4.new_markdown_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION",
                                      metadata=_nbgrader("why", solution=True, grade=True, points=1)),
    ]
    return nb


def test_make_exercise_replaces_solutions_and_drops_hidden_tests():
    sol = _toy_solution()
    ex = make_exercise(sol, source_name="solutions/00_toy.ipynb")
    header = ex.cells[0].source
    assert "do not edit" not in header.lower()
    assert "YOUR CODE HERE" in header and "check cell" in header, "the header says where answers go and how to check"
    assert ex.cells[2].source == "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert ex.cells[3].source == "assert double(2) == 4"
    assert ex.cells[4].source == "Why?\nYOUR ANSWER HERE"
    # the solution itself is untouched, and regeneration is deterministic
    assert "return 2 * x" in sol.cells[1].source
    assert nbformat.writes(make_exercise(sol)) == nbformat.writes(make_exercise(sol))
    # generating from an exercise (header included) does not stack headers
    again = make_exercise(ex)
    assert sum("Your exercise notebook" in c.source for c in again.cells) == 1


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a matching"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "again before"),
])
def test_unbalanced_markers_are_reported_with_their_cell(source, message):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    with pytest.raises(ValueError, match=message):
        make_exercise(nb, source_name="s.ipynb")


def test_nbgrader_problems_finds_missing_metadata():
    assert nbgrader_problems(_toy_solution()) == []
    nb = _toy_solution()
    del nb.cells[1].metadata["nbgrader"]
    nb.cells[2].metadata["nbgrader"]["points"] = 0
    problems = " | ".join(nbgrader_problems(nb))
    assert "no nbgrader metadata" in problems and "no positive points" in problems


def test_generate_all_writes_then_reports_up_to_date(tmp_path):
    (tmp_path / "solutions").mkdir()
    nbformat.write(_toy_solution(), tmp_path / "solutions" / "00_toy.ipynb")
    assert [p.name for p in generate_all(tmp_path)] == ["00_toy.ipynb"]
    assert generate_all(tmp_path, check=True) == []


def test_check_array_explains_common_mistakes():
    e = np.array([1.0, -2.0, 3.0])
    check_array("g", e + 1e-12, e)
    with pytest.raises(CheckError, match="wrong sign"):
        check_array("g", -e, e)
    with pytest.raises(CheckError, match="forget the 2"):
        check_array("g", 0.5 * e, e)
    with pytest.raises(CheckError, match="divide by n"):
        check_array("g", 3 * e, e, hints={3.0: "did you divide by n?"})
    with pytest.raises(CheckError, match=r"shape \(3, 1\), expected \(3,\)"):
        check_array("g", e[:, None], e)
    with pytest.raises(CheckError, match="NaN or inf"):
        check_array("g", np.array([np.nan, 0, 0]), e)
    with pytest.raises(CheckError, match="forget to `return`"):
        check_array("g", None, e)
    with pytest.raises(CheckError, match="at index"):
        check_array("g", np.array([1.0, -2.0, 4.0]), e)


def test_check_scalar_and_check_true():
    check_scalar("loss", np.float64(2.302585), np.log(10), rtol=1e-5)
    with pytest.raises(CheckError, match="single number"):
        check_scalar("loss", np.ones(3), 1.0)
    with pytest.raises(CheckError, match="custom advice"):
        check_true(False, "custom advice")


def test_exercises_folder_is_generated_from_solutions():
    """exercises/ must be exactly what the generator makes from solutions/ (run it to fix)."""
    stale = generate_all(ROOT, check=True)
    assert not stale, f"stale exercise notebooks {[p.name for p in stale]}: run `python -m sftcourse.exercises`"
    assert sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb")) == [p.name for p in SOLUTIONS]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_has_valid_nbgrader_metadata_and_three_graded_exercises(solution):
    nb = nbformat.read(solution, as_version=4)
    assert nbgrader_problems(nb) == []
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert len(graded) >= 3, f"{solution.name} has {len(graded)} graded cells; each chapter needs at least 3"


@pytest.mark.slow
@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_graded_check_fails_on_the_unsolved_stub(solution):
    """Run the student notebook as generated: each graded code cell must raise.

    (The same checks passing on the solution is tested by nbval, which runs solutions/.)
    """
    ex = make_exercise(nbformat.read(solution, as_version=4), source_name=solution.name)
    NotebookClient(ex, timeout=600, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "exercises")}}).execute()
    graded = [c for c in ex.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    assert graded
    passing = [c.metadata["nbgrader"]["grade_id"] for c in graded
               if not any(o.get("output_type") == "error" for o in c.outputs)]
    assert not passing, f"these checks pass on the unsolved stub, so they test nothing: {passing}"
