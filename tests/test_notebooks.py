"""Notebook hygiene: names, skeleton, no saved outputs, a solution per chapter."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
START_PAGE = ROOT / "chapters" / "00_start_here.ipynb"
CHAPTERS = sorted(p for p in (ROOT / "chapters").glob("*.ipynb") if p != START_PAGE)
EXERCISES = sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))
ALL = sorted((ROOT / "chapters").glob("*.ipynb")) + EXERCISES
LAST_CHAPTER = 13   # the course plan ends with chapter 13 (scaling out); it has no next chapter
LINK = re.compile(r"\]\(([^)\s]+)\)")


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


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_ends_with_links_to_its_exercises_and_the_next_chapter(path):
    nb = nbformat.read(path, as_version=4)
    last = nb.cells[-1]
    assert last.cell_type == "markdown", "a chapter ends with its summary and links (a markdown cell)"
    links = LINK.findall(last.source)
    assert f"../exercises/{path.name}" in links, \
        f"the last cell links to the exercises: [exercises/{path.name}](../exercises/{path.name})"
    num = int(path.name[:2])
    if num == LAST_CHAPTER:
        return
    pattern = re.compile(rf"{num + 1:02d}_[a-z0-9_]+\.ipynb")
    onward = [link for link in links if pattern.fullmatch(link)]
    assert onward, f"the last cell links to the next chapter, a notebook named {num + 1:02d}_*.ipynb next to this one"
    written = sorted((ROOT / "chapters").glob(f"{num + 1:02d}_*.ipynb"))
    if written:   # a chapter still being written may not exist yet; once it does, the link must find it
        assert onward[0] == written[0].name, f"the link {onward[0]} does not match chapters/{written[0].name}"
    assert "00_start_here.ipynb" in links, "the last cell links back to the course map"


@pytest.mark.parametrize("path", EXERCISES, ids=[f"{p.parent.name}/{p.stem}" for p in EXERCISES])
def test_exercise_notebook_links_back_to_its_chapter(path):
    nb = nbformat.read(path, as_version=4)
    head = "\n".join(c.source for c in nb.cells[:2] if c.cell_type == "markdown")
    assert f"../chapters/{path.name}" in LINK.findall(head), \
        f"the title cell links to its chapter: [chapters/{path.name}](../chapters/{path.name})"
    assert (ROOT / "chapters" / path.name).exists()


def test_start_page_lists_every_chapter_with_a_time():
    nb = nbformat.read(START_PAGE, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    links = LINK.findall(text)
    for path in CHAPTERS:
        assert path.name in links, f"the start page links to {path.name}"
        row = next((line for line in text.splitlines() if f"]({path.name})" in line and line.startswith("|")), "")
        assert re.search(r"\d+(\.\d+)? (min|s)\b|not measured", row), f"the map's row for {path.name} gives a time"
    assert "GLOSSARY.md" in text
