"""The answer catalogue: every plausible wrong answer fails a VISIBLE check with a sentence, every
correct alternative passes all checks (visible and hidden).

For each solution notebook one kernel runs the notebook as written, then, per catalogued answer:
the answer's code (in place of the solution cell), the student copy's check cell(s), the full
check cell(s) with the hidden tests, and the solution cell again to restore a correct state.
Run with ``-s`` to print the counts per notebook (wrong caught visibly / hidden only / uncaught).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

sys.path.insert(0, str(Path(__file__).parent))
from answer_catalogue import CATALOGUE, Answer  # noqa: E402

from sftcourse.exercises import make_exercise  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


class Kernel:
    """A live IPython kernel that runs code and reports (error name, message) or None."""

    def __init__(self, cwd: Path) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd))

    def run(self, code: str, timeout: float = 300) -> tuple[str, str] | None:
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=lambda msg: None)
        content = reply["content"]
        if content["status"] == "error":
            return content["ename"], content["evalue"]
        return None

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _checks_after(nb, index: int) -> list[int]:
    """Indices of the graded check cells that follow solution cell ``index`` (up to the next solution)."""
    out = []
    for j in range(index + 1, len(nb.cells)):
        meta = nb.cells[j].get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            break
        if meta.get("grade") and nb.cells[j].cell_type == "code":
            out.append(j)
    return out


def _outcome(result: tuple[str, str] | None) -> str:
    return "pass" if result is None else f"{result[0]}: {result[1]}"


@pytest.mark.parametrize("stem", sorted(CATALOGUE), ids=sorted(CATALOGUE))
def test_catalogue(stem: str) -> None:
    path = ROOT / "solutions" / f"{stem}.ipynb"
    solution = nbformat.read(path, as_version=4)
    student = make_exercise(solution)
    visible = {_grade_id(c): c.source for c in student.cells if c.cell_type == "code" and _grade_id(c)}
    by_id = {_grade_id(c): i for i, c in enumerate(solution.cells) if _grade_id(c)}
    kernel = Kernel(path.parent)
    problems: list[str] = []
    counts = {"wrong": 0, "caught_visibly": 0, "hidden_only": 0, "uncaught": 0, "right": 0, "accepted": 0}
    try:
        for i, cell in enumerate(solution.cells):
            if cell.cell_type == "code":
                result = kernel.run(cell.source)
                assert result is None, f"the solution notebook itself fails at cell {i}: {_outcome(result)}"
        answer: Answer
        for answer in CATALOGUE[stem]:
            index = by_id[answer.grade_id]
            checks = _checks_after(solution, index)
            assert checks, f"no check cell follows {answer.grade_id}"
            defined = kernel.run(answer.code)
            assert defined is None, f"{answer.grade_id}: the catalogued answer does not even run: {_outcome(defined)}"
            seen = [kernel.run(visible[_grade_id(solution.cells[j])]) for j in checks]
            # the hidden tests matter for a right answer (must pass) and for a wrong one no visible check caught
            needs_full = not answer.wrong or all(r is None for r in seen)
            full = [kernel.run(solution.cells[j].source) for j in checks] if needs_full else []
            restored = kernel.run(solution.cells[index].source)
            assert restored is None
            label = f"{answer.grade_id} [{answer.why or answer.expect}]"
            if answer.wrong:
                counts["wrong"] += 1
                failure = next((r for r in seen if r is not None), None)
                if failure is None:
                    hidden = any(r is not None for r in full)
                    counts["hidden_only" if hidden else "uncaught"] += 1
                    problems.append(f"{label}: passes every visible check"
                                    + (" (only hidden tests fail)" if hidden else " and the hidden tests"))
                    continue
                counts["caught_visibly"] += 1
                if failure[0] != "CheckError":
                    problems.append(f"{label}: fails with {failure[0]} ({failure[1][:120]}), not a check's sentence")
                elif not re.search(answer.expect, failure[1]):
                    problems.append(f"{label}: caught, but the sentence does not say {answer.expect!r}: {failure[1]}")
            else:
                counts["right"] += 1
                bad = [r for r in seen + full if r is not None]
                if bad:
                    problems.append(f"{label}: a correct answer is rejected: {_outcome(bad[0])}")
                else:
                    counts["accepted"] += 1
    finally:
        kernel.close()
    print(f"\n{stem}: {counts}")
    assert not problems, "\n".join(problems)


def test_catalogue_is_big_enough():
    answers = [a for v in CATALOGUE.values() for a in v]
    assert sum(a.wrong for a in answers) >= 40 and sum(not a.wrong for a in answers) >= 20
    for stem, entries in CATALOGUE.items():
        nb = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
        ids = {_grade_id(c) for c in nb.cells}
        assert {a.grade_id for a in entries} <= ids, f"{stem}: unknown grade ids"
