#!/usr/bin/env python3
"""Refresh the measured quick-profile times in chapters/00_start_here.ipynb from a pytest junit XML.

Measure (one notebook at a time, on an otherwise idle machine), then write the table:

    SFTCOURSE_PROFILE=quick HF_HUB_OFFLINE=1 MPLBACKEND=Agg .venv/bin/python -m pytest \\
        --nbval-lax --nbval-current-env chapters/ --junitxml=times.xml
    .venv/bin/python tools/chapter_times.py times.xml --note "2 idle cores, <date>"

nbval reports one test per cell; a chapter's time is the sum over its cells (kernel start-up
excluded). Only rows of chapters found in the XML change; the others keep their value.
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
START_PAGE = ROOT / "chapters" / "00_start_here.ipynb"
NOTEBOOK = re.compile(r"(\d\d_[a-z0-9_]+)\.ipynb")
QUICK_COLUMN = 4          # | # | Chapter | Needs first | Quick ... | Full ... |
NOTE_START, NOTE_END = "<!-- times-note -->", "<!-- /times-note -->"


def chapter_seconds(junit_xml: Path) -> dict[str, float]:
    """Sum the durations of each notebook's cells: {'01_linear_regression.ipynb': seconds}."""
    totals: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        where = f"{case.get('classname', '')} {case.get('file', '')} {case.get('name', '')}"
        match = NOTEBOOK.search(where)
        # solutions/ and exercises/ reuse the chapters' file names: count only chapters/
        if match and "solutions" not in where and "exercises" not in where:
            totals[match.group(1) + ".ipynb"] += float(case.get("time", 0.0))
    return dict(totals)


def format_minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def update_table(text: str, times: dict[str, float], note: str | None) -> tuple[str, list[str]]:
    """Return the markdown with the quick-profile column replaced for every chapter in ``times``."""
    changed = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        cells = line.split("|")
        match = NOTEBOOK.search(cells[2]) if len(cells) > QUICK_COLUMN + 1 else None
        if match and match.group(0) in times:
            cells[QUICK_COLUMN] = f" {format_minutes(times[match.group(0)])} "
            lines[i] = "|".join(cells)
            changed.append(match.group(0))
    text = "\n".join(lines)
    if note is not None and NOTE_START in text:
        head, rest = text.split(NOTE_START, 1)
        text = head + NOTE_START + note + NOTE_END + rest.split(NOTE_END, 1)[1]
    return text, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit_xml", type=Path)
    parser.add_argument("--note", help="how the times were measured (replaces the note under the table)")
    parser.add_argument("--start-page", type=Path, default=START_PAGE)
    args = parser.parse_args(argv)
    times = chapter_seconds(args.junit_xml)
    if not times:
        print(f"no notebook test cases in {args.junit_xml}; was it written by pytest --nbval-lax --junitxml?",
              file=sys.stderr)
        return 2
    nb = nbformat.read(args.start_page, as_version=4)
    changed: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source, done = update_table(cell.source, times, args.note)
            changed += done
    nbformat.write(nb, args.start_page)
    for name in sorted(times):
        print(f"{name}: {format_minutes(times[name])}" + ("" if name in changed else "  (no row in the table)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
