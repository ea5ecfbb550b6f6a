#!/usr/bin/env python3
"""``sftcourse.train.fit`` against the Hugging Face ``Trainer`` on CPU: fine-tuning MiniLM-L6.

    .venv/bin/python benchmarks/fit_vs_trainer.py            # both modes, ~4 min on 2 cores

Same model (all-MiniLM-L6-v2 with a new 2-class head, same seed), same data (the course's
offline sentiment set, tokenised once to at most 64 tokens, padded per batch by the same
collator), batch 32, one epoch per round. Each arm runs in its own worker process; the arms take
turns (A, B, then B, A, ...), the first round is a warm-up and is not counted. Two modes:

- ``defaults``: fit with what chapter 10 teaches (``sftcourse.optim.make_adamw``: fused AdamW,
  weight decay 0.01 except biases and LayerNorm, 10% linear warmup then linear decay, gradient
  clipping at norm 1.0) against the Trainer with its defaults (only the learning rate, batch
  size and epochs set). ``--with-plain`` adds a third arm: fit with ``torch.optim.AdamW``'s
  default implementation and no clipping, the chapters' recipe before ``make_adamw``.
- ``matched``: both arms with exactly the same settings (fused AdamW, the same decay groups,
  warmup and schedule, clipping at 1.0).

Reports samples/s (wall time and process CPU time), tokens/s, the ratio fit/Trainer per round
and overall, peak RSS per arm, and whether each arm's training loss fell. Writes JSON to
``benchmarks/results/``. Timings on a shared machine are inflated by other jobs; the ratio of
interleaved runs is the number to read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sidebyside.py next to this file

from sidebyside import machine, run_interleaved, summarize, versions  # noqa: E402

LR = 2e-4  # chapter 10's quick-profile rate; both arms (it does not change the speed)
SEED = 0


class CountingCollator:
    """The course's PadCollator, counting the (padded) tokens it produces."""

    def __init__(self, pad_token_id: int) -> None:
        from sftcourse.text import PadCollator

        self.collate, self.tokens = PadCollator(pad_token_id), 0

    def __call__(self, features: Any) -> dict:
        batch = self.collate(features)
        self.tokens += batch["input_ids"].numel()
        return batch


def decay_groups(model: Any, weight_decay: float) -> list[dict]:
    """Weight decay on weights, none on biases and LayerNorm (chapter 10's make_optimizer)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class _Arm:
    def __init__(self, spec: dict) -> None:
        import torch

        from sftcourse.runtime import set_seed
        from sftcourse.hub import minilm_dir
        from sftcourse.text import encode_dataset, load_model, load_sentiment, load_tokenizer

        torch.set_num_threads(spec["threads"])
        data = load_sentiment("quick")
        train = data.train if spec["num_train"] is None else data.train.subset(spec["num_train"])
        tok = load_tokenizer(minilm_dir())
        self.train_enc = encode_dataset(train, tok, spec["max_length"])
        self.collate = CountingCollator(tok.pad_token_id)
        set_seed(SEED)
        self.model = load_model(minilm_dir(), num_classes=len(data.class_names))
        self.spec = spec
        self.steps = -(-len(self.train_enc) // spec["batch_size"])

    def sync(self) -> None:
        pass  # CPU: every op has finished when it returns

    def final(self) -> dict:
        import torch

        return {"torch_threads": torch.get_num_threads()}  # nothing (accelerate...) changed it


class FitArm(_Arm):
    """``sftcourse.train.fit``, one epoch per round; the optimizer persists, the schedule restarts."""

    def __init__(self, spec: dict) -> None:
        import torch
        from torch.utils.data import DataLoader

        from sftcourse.optim import make_adamw

        super().__init__(spec)
        self.loader = DataLoader(self.train_enc, batch_size=spec["batch_size"], shuffle=True,
                                 collate_fn=self.collate, generator=torch.Generator().manual_seed(SEED))
        groups = decay_groups(self.model, spec["weight_decay"])
        if spec["optimizer"] == "make_adamw":
            self.optimizer = make_adamw(groups, lr=LR, weight_decay=spec["weight_decay"], device="cpu")
        else:  # torch's default implementation (for-loop or foreach, as torch picks)
            self.optimizer = torch.optim.AdamW(groups, lr=LR, weight_decay=spec["weight_decay"])

    def run_round(self) -> dict:
        from torch import nn

        from sftcourse.optim import warmup_schedule
        from sftcourse.train import fit

        warmup = round(self.spec["warmup_frac"] * self.steps)
        sched = warmup_schedule(self.optimizer, warmup_steps=warmup, total_steps=self.steps)
        tokens0 = self.collate.tokens
        h = fit(self.model, self.loader, optimizer=self.optimizer, loss_fn=nn.CrossEntropyLoss(), device="cpu",
                num_epochs=1, scheduler=sched, max_grad_norm=self.spec["max_grad_norm"], progress=False)
        return {"samples": len(self.train_enc), "steps": self.steps, "tokens": self.collate.tokens - tokens0,
                "loss": h["train_loss"][0]}


class TrainerArm(_Arm):
    """``transformers.Trainer.train()``, one epoch per round (it keeps its optimizer, rebuilds the schedule)."""

    def __init__(self, spec: dict) -> None:
        from transformers import Trainer, TrainingArguments
        from transformers.utils import logging as hf_logging

        super().__init__(spec)
        hf_logging.set_verbosity_error()
        extra = dict(spec["trainer_kwargs"])
        if "warmup_frac" in extra:
            extra["warmup_steps"] = round(extra.pop("warmup_frac") * self.steps)
        self.args = TrainingArguments(
            output_dir=tempfile.mkdtemp(prefix="sftcourse-bench-"), per_device_train_batch_size=spec["batch_size"],
            learning_rate=LR, num_train_epochs=1, use_cpu=True, seed=SEED, save_strategy="no",
            report_to="none", disable_tqdm=True, **extra)
        self.trainer = Trainer(model=self.model, args=self.args, train_dataset=self.train_enc,
                               data_collator=self.collate)

    def run_round(self) -> dict:
        tokens0 = self.collate.tokens
        result = self.trainer.train()
        return {"samples": len(self.train_enc), "steps": result.global_step, "tokens": self.collate.tokens - tokens0,
                "loss": result.training_loss}

    def final(self) -> dict:
        opt = self.trainer.optimizer
        return super().final() | {"trainer_optimizer": type(opt).__name__, "trainer_optimizer_fused": bool(opt.defaults.get("fused")),
                "trainer_weight_decay": self.args.weight_decay, "trainer_max_grad_norm": self.args.max_grad_norm,
                "trainer_warmup_steps": self.args.warmup_steps, "trainer_lr_scheduler": str(self.args.lr_scheduler_type)}


def make_arm(spec: dict) -> _Arm:
    return FitArm(spec) if spec["kind"] == "fit" else TrainerArm(spec)


# The course's recipe (chapter 10) and the matched Trainer settings
COURSE = dict(kind="fit", optimizer="make_adamw", weight_decay=0.01, warmup_frac=0.1, max_grad_norm=1.0)
COURSE_BEFORE = dict(kind="fit", optimizer="torch_default", weight_decay=0.01, warmup_frac=0.1, max_grad_norm=None)
TRAINER_DEFAULTS = dict(kind="trainer", trainer_kwargs={})
TRAINER_MATCHED = dict(kind="trainer", trainer_kwargs=dict(optim="adamw_torch_fused", weight_decay=0.01,
                                                           warmup_frac=0.1, lr_scheduler_type="linear",
                                                           max_grad_norm=1.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["defaults", "matched"], choices=["defaults", "matched"])
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per arm (after the warm-up)")
    parser.add_argument("--warmup-rounds", type=int, default=1)
    parser.add_argument("--num-train", type=int, default=None, help="training examples per round (default: all 600)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads per arm (the arms take turns); 1 on a machine busy with other jobs, "
                             "where idle OpenMP threads spin-wait for descheduled ones")
    parser.add_argument("--with-plain", action="store_true",
                        help="add fit with torch's default AdamW and no clipping (the recipe before make_adamw)")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/fit_vs_trainer_cpu_<time>.json)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup_rounds < 1:
        parser.error("--rounds and --warmup-rounds must be >= 1 (the warm-up round is never counted)")

    common = dict(num_train=args.num_train, batch_size=args.batch_size, max_length=args.max_length,
                  threads=args.threads)
    report: dict[str, Any] = {"benchmark": "fit_vs_trainer_cpu", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "machine": machine(), "versions": versions(),
                              "settings": {**common, "lr": LR, "seed": SEED, "rounds": args.rounds,
                                           "warmup_rounds": args.warmup_rounds, "model": "all-MiniLM-L6-v2",
                                           "data": "sftcourse offline sentiment (train split)",
                                           "note": "each arm in its own process, arms take turns, warm-up rounds not counted"},
                              "modes": {}}
    for mode in args.modes:
        if mode == "defaults":
            specs = {"fit": {**COURSE, **common}, "trainer": {**TRAINER_DEFAULTS, **common}}
            if args.with_plain:
                specs["fit_torch_default_adamw"] = {**COURSE_BEFORE, **common}
        else:
            specs = {"fit": {**COURSE, **common}, "trainer": {**TRAINER_MATCHED, **common}}
        print(f"== mode {mode}", flush=True)
        results = run_interleaved(make_arm, specs, rounds=args.rounds, warmup_rounds=args.warmup_rounds,
                                  log=lambda s: print(s, flush=True))
        summary = summarize(results, "fit", "trainer")
        if "fit_torch_default_adamw" in results:
            summary["ratio_fit_torch_default_adamw_over_trainer"] = round(
                summary["arms"]["fit_torch_default_adamw"]["samples_per_s"] / summary["arms"]["trainer"]["samples_per_s"], 3)
        summary["specs"] = specs
        summary["rounds"] = {name: res["rounds"] for name, res in results.items()}
        report["modes"][mode] = summary
        for name, arm in summary["arms"].items():
            print(f"{mode:8} {name:24} {arm['samples_per_s']:8.2f} samples/s ({arm['samples_per_cpu_s']:.2f} per CPU s), "
                  f"peak RSS {arm['peak_rss_mib']:.0f} MiB, loss {arm['loss_per_round'][0]:.3f} -> "
                  f"{arm['loss_per_round'][-1]:.3f} (falls: {arm['loss_falls']})")
        print(f"{mode:8} ratio fit/Trainer {summary['ratio_fit_over_trainer']:.3f} (per round "
              f"{summary['ratio_per_round']}, by CPU time {summary['ratio_fit_over_trainer_cpu_time']:.3f})", flush=True)
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    report["ratio_fit_over_trainer"] = {mode: s["ratio_fit_over_trainer"] for mode, s in report["modes"].items()}
    report["losses_fall"] = all(a["loss_falls"] for s in report["modes"].values() for a in s["arms"].values())
    out = Path(args.out) if args.out else (Path(__file__).resolve().parent / "results"
                                           / f"fit_vs_trainer_cpu_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}; ratio fit/Trainer {report['ratio_fit_over_trainer']}; losses fall: {report['losses_fall']}")
    return 0 if report["losses_fall"] else 1


if __name__ == "__main__":
    sys.exit(main())
