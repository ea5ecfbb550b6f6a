"""tools/calibrate_agreement.py: seeds, the notebook it builds from chapter 10, the result line, the summary.

No notebook is executed here (one run costs about a minute); the real run's output is in benchmarks/results/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import calibrate_agreement as ca  # noqa: E402


def test_seeds_accept_ranges_and_lists():
    assert ca.parse_seeds("0-3") == [0, 1, 2, 3]
    assert ca.parse_seeds("5") == [5]
    assert ca.parse_seeds("0,3,5-7") == [0, 3, 5, 6, 7]


@pytest.mark.parametrize("bad", ["", "a", "3-1", "-2", "1-2-3", "0-2,2", "1.5"])
def test_bad_seeds_name_the_option_and_the_fix(bad):
    with pytest.raises(ValueError, match="--seeds"):
        ca.parse_seeds(bad)


def test_the_built_notebook_sets_the_seed_after_the_config_and_stops_before_the_agreement_cell():
    chapter = nbformat.read(ROOT / "chapters" / "10_finetune_bert.ipynb", as_version=4)
    built = ca.build_notebook(chapter, 7)
    sources = [c.source for c in built.cells]
    config_i = next(i for i, s in enumerate(sources) if ca.CONFIG_MARK in s)
    assert sources[config_i + 1].startswith('config["seed"] = 7')
    assert not any(ca.AGREE_MARK in s and "assert" in s for s in sources[config_i + 1:])  # stopped before it
    assert sources[-1] == ca.REPORT_CELL
    # every cell the accuracies depend on is kept: the hand loop, fit and the Trainer
    for needed in ("def train_by_hand", "hand_acc = accuracy", "def finetune_with_fit", "trainer_acc = accuracy"):
        assert any(needed in s for s in sources), needed
    # the chapter itself is not modified
    assert len(chapter.cells) > len(built.cells) and not any(s.startswith('config["seed"] = 7') for s in
                                                              (c.source for c in chapter.cells))


def test_a_notebook_without_the_agreement_cell_is_refused():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("config = dict(seed=0)"), nbformat.v4.new_code_cell("print(1)")]
    with pytest.raises(ValueError, match="chapter 10"):
        ca.build_notebook(nb, 0)


def _executed(text: str):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(ca.REPORT_CELL)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nb.cells = [nbformat.v4.new_markdown_cell("x"), cell]
    return nb


def test_the_result_line_is_read_back():
    line = ca.MARKER + json.dumps({"seed": 3, "hand": 0.98, "fit": 0.9725, "trainer": 0.97})
    assert ca.parse_result(_executed("some other output\n" + line + "\n")) == {
        "seed": 3, "hand": 0.98, "fit": 0.9725, "trainer": 0.97}
    with pytest.raises(ValueError, match="no line starting with"):
        ca.parse_result(_executed("the cell printed nothing useful\n"))
    with pytest.raises(ValueError, match="lacks"):
        ca.parse_result(_executed(ca.MARKER + json.dumps({"seed": 3, "hand": 0.98}) + "\n"))


def test_summary_against_hand_computed_spreads():
    runs = [{"seed": 0, "hand": 0.985, "fit": 0.970, "trainer": 0.970},   # spread 0.015
            {"seed": 1, "hand": 0.950, "fit": 0.990, "trainer": 0.960},   # spread 0.040
            {"seed": 2, "hand": 0.900, "fit": 0.900, "trainer": 0.900}]   # spread 0
    s = ca.summarize(runs)
    assert s["n_runs"] == 3
    assert s["max_abs_diff_per_run"] == pytest.approx([0.015, 0.040, 0.0])
    assert s["max_abs_diff_max"] == pytest.approx(0.040)
    assert s["max_abs_diff_mean"] == pytest.approx(0.055 / 3)
    assert s["max_abs_diff_median"] == pytest.approx(0.015)
    assert s["pairwise_abs_max"]["hand-fit"] == pytest.approx(0.040)
    assert s["accuracy_range"]["hand"] == pytest.approx([0.900, 0.985])
    with pytest.raises(ValueError, match="at least one run"):
        ca.summarize([])
