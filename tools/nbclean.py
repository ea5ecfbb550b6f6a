#!/usr/bin/env python3
"""Normalise course notebooks before committing: no outputs, the course kernel, stable ids.

    python tools/nbclean.py chapters/*.ipynb solutions/*.ipynb
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "sftcourse", "display_name": "Python (sftcourse)", "language": "python"}


def clean(path: Path) -> bool:
    """Strip outputs and execution counts, set the kernelspec; return True if the file changed."""
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell["id"] = f"cell-{i:03d}"
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
        return True
    return False


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        if clean(Path(arg)):
            print(f"cleaned {arg}")
