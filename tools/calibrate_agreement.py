#!/usr/bin/env python3
"""Calibrate chapter 10's ``agree_tol``: run the chapter itself with different seeds.

    .venv/bin/python tools/calibrate_agreement.py --seeds 0-19

Chapter 10 trains one recipe three ways (a hand-written loop, ``fit``, the Hugging Face
``Trainer``) and asserts that their test accuracies agree to ``config["agree_tol"]``. How close
they should be is a property of the recipe's seed-to-seed noise, so this script measures it: for
each seed k it executes the chapter (quick profile, offline, in a fresh kernel of the current
Python environment, as ``pytest --nbval-current-env`` does) from the top down to the agreement
cell, with one cell injected after the config cell that sets ``config["seed"] = k``. The cells
after 10.5 (pretraining's value, pooling, your own data) do not influence the three accuracies and
are not run. A last injected cell prints the three accuracies as one JSON line, which this script
reads back. It reports, per run, the largest pairwise difference, and over the runs its mean,
quantiles and maximum; the JSON goes to ``benchmarks/results/`` after every run (a run cut short
keeps what it measured).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "chapters" / "10_finetune_bert.ipynb"
RESULTS = ROOT / "benchmarks" / "results"
MARKER = "AGREEMENT_RESULT "
CONFIG_MARK = "config = dict("
AGREE_MARK = 'config["agree_tol"]'
ARMS = ("hand", "fit", "trainer")
REPORT_CELL = (
    "import json as _json\n"
    "print(" + repr(MARKER) + " + _json.dumps({'seed': config['seed'], 'hand': float(hand_acc), "
    "'fit': float(fit_test['accuracy']), 'trainer': float(trainer_acc)}))"
)


def parse_seeds(text: str) -> list[int]:
    """'0-9' -> [0..9]; '3,5,8' -> [3, 5, 8]; ranges and lists combine ('0-2,7')."""
    seeds: list[int] = []
    for part in text.split(","):
        bounds = part.strip().split("-")
        try:
            if len(bounds) == 1:
                seeds.append(int(bounds[0]))
            elif len(bounds) == 2 and int(bounds[0]) <= int(bounds[1]):
                seeds.extend(range(int(bounds[0]), int(bounds[1]) + 1))
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"--seeds: cannot read {part!r} in {text!r}; pass non-negative integers and "
                             f"increasing ranges, e.g. '0-9' or '0,3,5-7'") from None
    if any(s < 0 for s in seeds):
        raise ValueError(f"--seeds: seeds must be non-negative, got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: {text!r} repeats a seed; each run needs its own seed")
    return seeds


def build_notebook(nb: Any, seed: int) -> Any:
    """The chapter down to (not including) its agreement cell, with the seed set after the config cell
    and a last cell that prints the three accuracies after MARKER."""
    cells = nb.cells
    config_i = next((i for i, c in enumerate(cells) if c.cell_type == "code" and CONFIG_MARK in c.source), None)
    agree_i = next((i for i, c in enumerate(cells) if c.cell_type == "code" and AGREE_MARK in c.source
                    and "assert" in c.source and CONFIG_MARK not in c.source), None)
    if config_i is None or agree_i is None or agree_i <= config_i:
        raise ValueError(f"the notebook has no config cell ({CONFIG_MARK!r}) followed by an agreement cell "
                         f"(an assert on {AGREE_MARK}); is it chapter 10?")
    out = nbformat.v4.new_notebook(metadata=nb.metadata)
    out.cells = (list(cells[: config_i + 1])
                 + [nbformat.v4.new_code_cell(f'config["seed"] = {int(seed)}  # injected by calibrate_agreement')]
                 + list(cells[config_i + 1: agree_i])
                 + [nbformat.v4.new_code_cell(REPORT_CELL)])
    return out


def parse_result(nb: Any) -> dict:
    """Read the JSON line the report cell printed (the last code cell's stream output)."""
    for cell in reversed(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            for line in text.splitlines():
                if line.startswith(MARKER):
                    result = json.loads(line[len(MARKER):])
                    missing = [k for k in ("seed", *ARMS) if k not in result]
                    if missing:
                        raise ValueError(f"the result line lacks {missing}: {line!r}")
                    return result
    raise ValueError(f"no line starting with {MARKER!r} in the executed notebook's outputs")


def summarize(runs: list[dict]) -> dict:
    """Per run the largest pairwise |difference| of the three accuracies; over runs its distribution."""
    if not runs:
        raise ValueError("summarize needs at least one run")
    spreads = [max(abs(r[a] - r[b]) for a, b in combinations(ARMS, 2)) for r in runs]
    pairs = {f"{a}-{b}": [r[a] - r[b] for r in runs] for a, b in combinations(ARMS, 2)}
    ordered = sorted(spreads)

    def quantile(q: float) -> float:  # nearest rank, no interpolation: a value that occurred
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    return {
        "n_runs": len(runs),
        "max_abs_diff_per_run": spreads,
        "max_abs_diff_mean": statistics.fmean(spreads),
        "max_abs_diff_std": statistics.pstdev(spreads),
        "max_abs_diff_median": quantile(0.5),
        "max_abs_diff_q90": quantile(0.9),
        "max_abs_diff_max": ordered[-1],
        "pairwise_mean": {k: statistics.fmean(v) for k, v in pairs.items()},
        "pairwise_abs_max": {k: max(abs(x) for x in v) for k, v in pairs.items()},
        "accuracy_range": {arm: [min(r[arm] for r in runs), max(r[arm] for r in runs)] for arm in ARMS},
    }


def run_one(notebook: Path, seed: int, kernel: str, timeout: int) -> dict:
    from nbclient import NotebookClient

    nb = build_notebook(nbformat.read(notebook, as_version=4), seed)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(notebook.parent)}}
                   ).execute()
    result = parse_result(nb)
    if result["seed"] != seed:
        raise ValueError(f"the notebook ran with seed {result['seed']}, not {seed}")
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["loadavg_1"] = round(os.getloadavg()[0], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-9", help="seeds to run, e.g. '0-9' or '0,3,5-7' (default 0-9)")
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK)
    parser.add_argument("--kernel", default="python3",
                        help="Jupyter kernel (default python3: this Python environment, like --nbval-current-env)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    if not args.notebook.is_file():
        parser.error(f"--notebook: {args.notebook} is not a file")
    os.environ.update(SFTCOURSE_PROFILE="quick", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    started = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or RESULTS / f"agreement_ch10_quick_{started}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record: dict = {"benchmark": "agreement_ch10_quick", "started": started,
                    "command": "tools/calibrate_agreement.py " + " ".join(sys.argv[1:] if argv is None else argv),
                    "notebook": str(args.notebook.relative_to(ROOT) if args.notebook.is_relative_to(ROOT)
                                    else args.notebook),
                    "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                "loadavg_at_start": list(os.getloadavg())},
                    "runs": []}
    for seed in seeds:
        result = run_one(args.notebook, seed, args.kernel, args.timeout)
        record["runs"].append(result)
        record["summary"] = summarize(record["runs"])
        out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        spread = record["summary"]["max_abs_diff_per_run"][-1]
        print(f"seed {seed}: hand {result['hand']:.4f} fit {result['fit']:.4f} trainer {result['trainer']:.4f} "
              f"| max |diff| {spread:.4f} | {result['wall_s']:.0f} s, load {result['loadavg_1']}", flush=True)
    s = record["summary"]
    print(f"{s['n_runs']} runs: max |diff| per run mean {s['max_abs_diff_mean']:.4f}, median "
          f"{s['max_abs_diff_median']:.4f}, 90% {s['max_abs_diff_q90']:.4f}, max {s['max_abs_diff_max']:.4f} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
