"""tools/chapter_times.py: per-notebook sums of nbval's cell durations land in the start page's table."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import chapter_times  # noqa: E402

XML = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="chapters.01_linear_regression.ipynb" name="Cell 0" time="30.0"/>
<testcase classname="chapters.01_linear_regression.ipynb" name="Cell 1" time="60.0"/>
<testcase classname="chapters.02_logistic_softmax.ipynb" name="Cell 0" time="12.0"/>
<testcase classname="tests.test_grading" name="test_x" time="99.0"/>
</testsuite></testsuites>"""


def test_times_are_summed_per_notebook_and_written_to_the_table(tmp_path):
    xml = tmp_path / "t.xml"
    xml.write_text(XML)
    assert chapter_times.chapter_seconds(xml) == {"01_linear_regression.ipynb": 90.0, "02_logistic_softmax.ipynb": 12.0}
    page = tmp_path / "00_start_here.ipynb"
    shutil.copy(ROOT / "chapters" / "00_start_here.ipynb", page)
    assert chapter_times.main([str(xml), "--start-page", str(page), "--note", "measured on a test"]) == 0
    text = "\n".join(c.source for c in nbformat.read(page, as_version=4).cells)
    row01 = next(line for line in text.splitlines() if "](01_linear_regression.ipynb)" in line)
    row02 = next(line for line in text.splitlines() if "](02_logistic_softmax.ipynb)" in line)
    assert row01.split("|")[4].strip() == "1.5 min" and row02.split("|")[4].strip() == "12 s"
    assert "measured on a test" in text
