"""Notebook hygiene: names, skeleton, no saved outputs, a solution per chapter."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
ALL = CHAPTERS + sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))


def test_there_are_chapters():
    assert CHAPTERS, "chapters/ has no notebooks"


@pytest.mark.parametrize("path", ALL, ids=[f"{p.parent.name}/{p.stem}" for p in ALL])
def test_notebook_is_clean(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), "name notebooks NN_snake_case.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any("import *" in s for s in code), "import names explicitly"
    assert not any(line.lstrip().startswith(("!pip", "%pip")) for s in code for line in s.splitlines())
    saved = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]
    assert not saved, f"cells {saved} were saved with outputs; run `python tools/nbclean.py {path.relative_to(ROOT)}`"
    assert nb.metadata.get("kernelspec", {}).get("name") == "sftcourse"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_skeleton(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    num = path.name[:2]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {num} · "), \
        f"the first cell must be the title '# {num} · Title'"
    text = "\n".join(c.source for c in nb.cells)
    assert "banner(" in text, "the setup cell prints the profile banner (sftcourse.runtime.banner)"
    assert re.search(r"^## \d+\.\d+ ", text, flags=re.M), "sections are numbered '## N.1 …'"
    assert (ROOT / "solutions" / path.name).exists(), f"solutions/{path.name} is missing"
    assert f"exercises/{path.name}" in text, "the summary links to the chapter's exercises"
