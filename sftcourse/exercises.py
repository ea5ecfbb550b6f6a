"""Exercises (a maintainer's tool): generate the student notebooks in exercises/ from solutions/.

The checks that exercise cells call live in :mod:`sftcourse.grading`.

Solutions are the single source. They use nbgrader's markers, so ``solutions/``
can be dropped into an nbgrader course unchanged:

- ``### BEGIN SOLUTION`` / ``### END SOLUTION`` in a code cell: replaced by
  ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` at the marker's indentation;
  in a markdown cell by ``YOUR ANSWER HERE``.
- ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``: removed from the student copy.

Regenerate every exercise notebook with ``python -m sftcourse.exercises`` (add
``--check`` to only report whether ``exercises/`` is up to date).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = "YOUR ANSWER HERE"
HEADER_TAG = "sftcourse-generated-header"


# ---------------------------------------------------------------------------
# Generating exercises from solutions


def _replace_regions(source: str, begin: str, end: str, stub: tuple[str, ...] | None,
                     where: str) -> tuple[str, int]:
    """Replace each begin..end region (marker lines included) by ``stub`` lines at the marker's indent."""
    out: list[str] = []
    inside = False
    count = 0
    indent = ""
    for lineno, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise ValueError(f"{where}: line {lineno} opens '{begin}' again before '{end}'")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            count += 1
        elif stripped == end:
            if not inside:
                raise ValueError(f"{where}: line {lineno} has '{end}' without a matching '{begin}'")
            inside = False
            if stub is not None:
                out.extend(indent + s for s in stub)
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: '{begin}' is never closed by '{end}'")
    return "\n".join(out), count


def make_exercise(solution: nbformat.NotebookNode, *, source_name: str = "the solution notebook"
                  ) -> nbformat.NotebookNode:
    """Return the student version of a solution notebook (the input is not modified)."""
    nb = copy.deepcopy(solution)
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("tags") and HEADER_TAG in cell.metadata.tags:
            continue  # a header from an earlier generation never propagates
        where = f"{source_name}, cell {i}"
        if cell.cell_type == "code":
            cell.source, _ = _replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None, where)
            cell.source, _ = _replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source, _ = _replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, (MARKDOWN_STUB,), where)
        cells.append(cell)
    header = nbformat.v4.new_markdown_cell(
        "> **Your exercise notebook.** Write each answer in the cell marked `# YOUR CODE HERE` "
        "(delete the `raise NotImplementedError()` line), then run the check cell below it: it prints ✓ "
        "or says in one sentence what to fix. Run the cells from the top (the first code cell sets up the "
        "data); Kernel ▸ Restart Kernel and Run All Cells re-checks everything. Your answers are yours to "
        "save; the check cells are what a grader runs.\n"
        f"> <small>Made from `{source_name}` by `python -m sftcourse.exercises`; instructors change the "
        "solution notebook and regenerate.</small>")
    header.metadata["tags"] = [HEADER_TAG]
    header.metadata["editable"] = False
    header.metadata["deletable"] = False
    nb.cells = [header, *cells]
    # Cell ids must be stable so that regenerating gives identical files.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nb


def nbgrader_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Check a solution notebook's nbgrader metadata; return a list of problems (empty if fine)."""
    problems: list[str] = []
    ids: set[str] = set()
    graded = 0
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        has_solution = BEGIN_SOLUTION in cell.source
        if meta is None:
            if has_solution:
                problems.append(f"cell {i} has a solution region but no nbgrader metadata")
            continue
        gid = meta.get("grade_id")
        if not gid:
            problems.append(f"cell {i} has nbgrader metadata without a grade_id")
        elif gid in ids:
            problems.append(f"cell {i} repeats grade_id {gid!r}")
        else:
            ids.add(gid)
        if has_solution and not meta.get("solution"):
            problems.append(f"cell {i} has a solution region but nbgrader.solution is not true")
        if meta.get("solution") and not has_solution and cell.cell_type == "code":
            problems.append(f"cell {i} is an nbgrader solution cell without '{BEGIN_SOLUTION}'")
        if meta.get("grade"):
            graded += 1
            if cell.cell_type == "code" and not meta.get("solution") and not meta.get("locked"):
                problems.append(f"cell {i} is an autograded test cell but is not locked")
            points = meta.get("points")
            if not isinstance(points, (int, float)) or points <= 0:
                problems.append(f"cell {i} is graded but has no positive points")
        if meta.get("schema_version") != 3:
            problems.append(f"cell {i} needs nbgrader schema_version 3")
    if graded == 0:
        problems.append("the notebook has no graded cell")
    return problems


def exercise_path(solution_path: Path, root: Path) -> Path:
    return root / "exercises" / solution_path.name


def generate_all(root: Path, *, check: bool = False, only: list[Path] | None = None) -> list[Path]:
    """Write exercises/NN_*.ipynb for each solutions/NN_*.ipynb (or those in ``only``); return what changed."""
    changed = []
    sources = sorted((root / "solutions").glob("*.ipynb")) if only is None else [Path(p) for p in only]
    for sol in sources:
        nb = nbformat.read(sol, as_version=4)
        problems = nbgrader_problems(nb)
        if problems:
            raise ValueError(f"{sol.name}: " + "; ".join(problems))
        text = nbformat.writes(make_exercise(nb, source_name=f"solutions/{sol.name}")) + "\n"
        target = exercise_path(sol, root)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            changed.append(target)
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate exercises/ from solutions/.")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="course root (default: cwd)")
    parser.add_argument("--check", action="store_true", help="only report stale exercise notebooks")
    parser.add_argument("solutions", nargs="*", type=Path,
                        help="solution notebooks to convert (default: all of solutions/)")
    args = parser.parse_args(argv)
    if not (args.root / "solutions").is_dir():
        print(f"no solutions/ folder under {args.root}; run from the course root or pass --root", file=sys.stderr)
        return 2
    missing = [p for p in args.solutions if not p.is_file()]
    if missing:
        print(f"not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    changed = generate_all(args.root, check=args.check, only=args.solutions or None)
    for path in changed:
        print(("stale: " if args.check else "wrote: ") + str(path))
    if args.check and changed:
        print("run `python -m sftcourse.exercises` to regenerate", file=sys.stderr)
        return 1
    if not changed:
        print("exercises/ is up to date")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
