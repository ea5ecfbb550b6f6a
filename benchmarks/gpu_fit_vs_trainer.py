#!/usr/bin/env python3
"""``sftcourse.train.fit`` against the Hugging Face ``Trainer`` on a GPU, with model FLOPs utilisation.

    python benchmarks/gpu_fit_vs_trainer.py                      # CUDA: every model, ~8 min on an H100
    python benchmarks/gpu_fit_vs_trainer.py --models bert resnet50 --peak-tflops 989
    python benchmarks/gpu_fit_vs_trainer.py --tiny --device cpu  # dry run: tiny configs, seconds per arm

Models (random weights, written with ``save_pretrained`` to a local folder and loaded back with
``from_pretrained``, the code path of a hub download; throughput does not depend on the values):

- ``bert``: the BERT-base architecture (``BertConfig()``), sequence classification, 128 tokens;
- ``resnet50``: transformers' ResNet-50 (``ResNetConfig()``), 1000 classes, 224x224, channels_last;
- ``smollm2``: a causal LM with SmolLM2-135M's sizes (``LlamaConfig``: 30 layers, 576 wide, 9 heads,
  3 KV heads, vocabulary 49,152, tied embeddings), next-token loss over 512 tokens, full fine-tuning;
- ``smollm2-lora``: the same with peft LoRA (r=16 on every linear layer), skipped if peft is missing.

Both arms get the same model, synthetic batches of fixed shape, DataLoader settings and exactly the
same recipe: fused AdamW, weight decay 0.01 (none on biases and norms), 10% linear warmup then linear
decay per round, clipping at norm 1.0, bf16 autocast on CUDA. Each arm runs in its own process; the
arms take turns. Two warm-up rounds (not counted) measure a step; each measured round then lasts at
least ``--min-seconds`` (default 20 s) of steady state.

FLOPs per step (forward + backward of one batch) are counted with ``torch.utils.flop_counter.
FlopCounterMode`` (matmuls, convolutions and CUDA's attention kernels; the CPU attention kernel has
no formula, so a ``--tiny`` dry run on CPU counts the matmuls only); MFU = FLOPs per step x steps per second / peak. The peak is the GPU's dense bf16
rate: ``--peak-tflops``, or looked up from the device name (table ``PEAK_BF16_TFLOPS``, NVIDIA's
datasheets, dense, without sparsity). JSON goes to ``benchmarks/results/`` with ``mfu`` and
``ratio_fit_over_trainer`` per model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sidebyside.py next to this file

from sidebyside import run_interleaved, summarize, versions  # noqa: E402

# Dense bf16 tensor-core peaks in TFLOP/s (NVIDIA datasheets; the "with sparsity" figures are twice these).
# Checked in order: the first name contained in torch.cuda.get_device_name() wins.
PEAK_BF16_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4),
                    ("GH200", 989.4), ("A100", 312.0), ("L40S", 362.05), ("L4", 121.0), ("A10", 125.0)]
SEED = 0
LR = 1e-4
WEIGHT_DECAY = 0.01
WARMUP_FRAC = 0.1
MAX_GRAD_NORM = 1.0

# Per model: architecture sizes (full and tiny), batch shape, loader workers
MODELS: dict[str, dict[str, Any]] = {
    "bert": dict(kind="bert", batch=64, seq=128, workers=2,
                 tiny=dict(batch=4, seq=16, config=dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2,
                                                        num_attention_heads=2, intermediate_size=64))),
    "resnet50": dict(kind="resnet", batch=256, image=224, num_labels=1000, workers=8,
                     tiny=dict(batch=4, image=32, num_labels=10,
                               config=dict(embedding_size=8, hidden_sizes=[16, 32], depths=[1, 1]))),
    "smollm2": dict(kind="llama", batch=16, seq=512, workers=2, lora=False,
                    config=dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                                rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                                bos_token_id=1, eos_token_id=2, pad_token_id=2),
                    tiny=dict(batch=4, seq=16, config=dict(vocab_size=1000, hidden_size=32, intermediate_size=64,
                                                           num_hidden_layers=2, num_attention_heads=4,
                                                           num_key_value_heads=2, max_position_embeddings=64,
                                                           tie_word_embeddings=True))),
}
MODELS["smollm2-lora"] = dict(MODELS["smollm2"], lora=True)


def peft_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("peft") is not None


def model_settings(name: str, tiny: bool) -> dict[str, Any]:
    """The sizes used for ``name``: the full ones, or the tiny dry-run ones."""
    base = {k: v for k, v in MODELS[name].items() if k != "tiny"}
    if tiny:
        base.update(MODELS[name]["tiny"])
        base["workers"] = 0
    return base


def save_random_model(settings: dict[str, Any], folder: Path) -> Path:
    """Build the architecture with random weights and ``save_pretrained`` it (the format of a hub download)."""

    torch.manual_seed(SEED)
    kind, config_kw = settings["kind"], dict(settings.get("config", {}))
    if kind == "bert":
        from transformers import BertConfig, BertForSequenceClassification

        model = BertForSequenceClassification(BertConfig(num_labels=2, **config_kw))
    elif kind == "resnet":
        from transformers import ResNetConfig, ResNetForImageClassification

        model = ResNetForImageClassification(ResNetConfig(num_labels=settings["num_labels"], **config_kw))
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        model = LlamaForCausalLM(LlamaConfig(**config_kw))
    model.save_pretrained(folder)
    return folder


class SyntheticBatches(Dataset):
    """``length`` examples cycling over a fixed bank of random ones (shapes are what the speed depends on)."""

    def __init__(self, bank: list[dict], length: int) -> None:
        self.bank, self.length = bank, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        return self.bank[i % len(self.bank)]


def make_bank(settings: dict[str, Any], image_dtype: torch.dtype, n: int = 256) -> list[dict]:
    """``n`` random examples of the model's input shape (images in ``image_dtype``)."""
    g = torch.Generator().manual_seed(SEED)
    kind = settings["kind"]
    if kind == "resnet":
        s = settings["image"]
        images = torch.randn(n, 3, s, s, generator=g).to(image_dtype)
        labels = torch.randint(0, settings["num_labels"], (n,), generator=g)
        return [{"pixel_values": images[i], "labels": labels[i]} for i in range(n)]
    vocab = settings.get("config", {}).get("vocab_size", 30522)
    ids = torch.randint(5, vocab, (n, settings["seq"]), generator=g)
    if kind == "bert":
        labels = torch.randint(0, 2, (n,), generator=g)
        return [{"input_ids": ids[i], "attention_mask": torch.ones_like(ids[i]), "labels": labels[i]} for i in range(n)]
    return [{"input_ids": ids[i], "attention_mask": torch.ones_like(ids[i]), "labels": ids[i]} for i in range(n)]


def collate(features: list[dict]) -> dict:
    """Stack the examples; images in channels_last, the layout the model's convolutions use."""

    batch = {k: torch.stack([f[k] for f in features]) for k in features[0]}
    if "pixel_values" in batch:
        batch["pixel_values"] = batch["pixel_values"].contiguous(memory_format=torch.channels_last)
    return batch


def causal_lm_loss(logits: Any, labels: Any) -> Any:
    """Next-token cross-entropy: position t predicts token t+1 (logits (B, T, V), labels (B, T), -100 ignored)."""
    from torch.nn import functional as F

    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)


def decay_groups(model: Any) -> list[dict]:
    """The Trainer's own split: weight decay except on biases and normalisation weights."""
    from transformers import Trainer

    names = set(Trainer.get_decay_parameter_names(None, model))  # uses no Trainer state
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in params if n in names], "weight_decay": WEIGHT_DECAY},
            {"params": [p for n, p in params if n not in names], "weight_decay": 0.0}]


class _Arm:
    def __init__(self, spec: dict) -> None:
        self.spec, self.settings = spec, spec["settings"]
        self.device = torch.device(spec["device"])
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(SEED)
        kind = self.settings["kind"]
        if kind == "bert":
            from transformers import AutoModelForSequenceClassification as Auto
        elif kind == "resnet":
            from transformers import AutoModelForImageClassification as Auto
        else:
            from transformers import AutoModelForCausalLM as Auto
        model = Auto.from_pretrained(spec["model_dir"])
        if self.settings.get("lora"):
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                     task_type="CAUSAL_LM"))
        if kind == "resnet":
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(self.device)
        self.amp = self.device.type == "cuda"  # bf16 autocast; images then travel as bf16 (half the host->GPU bytes)
        self.bank = make_bank(self.settings, torch.bfloat16 if self.amp else torch.float32)
        self.loss_fn = causal_lm_loss if kind == "llama" else torch.nn.CrossEntropyLoss()
        self.flops_per_step = self._count_flops()

    def _count_flops(self) -> int:
        """Matmul/convolution/attention FLOPs of one forward + backward on one batch."""
        from torch.utils.flop_counter import FlopCounterMode

        from sftcourse.train import forward_logits, unpack_batch

        batch = collate(self.bank[: self.settings["batch"]])
        x, y = unpack_batch(batch, self.device)
        counter = FlopCounterMode(display=False)
        with counter, torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            self.loss_fn(forward_logits(self.model, x), y).backward()
        self.model.zero_grad(set_to_none=True)
        return int(counter.get_total_flops())

    def loader_kwargs(self) -> dict:
        workers = self.settings["workers"]
        return dict(num_workers=workers, pin_memory=self.device.type == "cuda",
                    persistent_workers=False, prefetch_factor=4 if workers else None)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def final(self) -> dict:
        out = {"flops_per_step": self.flops_per_step,
               "trainable_params_M": round(sum(p.numel() for p in self.model.parameters() if p.requires_grad) / 1e6, 3)}
        if self.device.type == "cuda":
            out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            out["peak_gpu_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        return out


class FitArm(_Arm):
    def __init__(self, spec: dict) -> None:
        from sftcourse.optim import make_adamw

        super().__init__(spec)
        self.optimizer = make_adamw(decay_groups(self.model), lr=LR, weight_decay=WEIGHT_DECAY, device=self.device)

    def run_round(self, steps: int) -> dict:
        from torch.utils.data import DataLoader

        from sftcourse.optim import warmup_schedule
        from sftcourse.train import fit

        batch = self.settings["batch"]
        loader = DataLoader(SyntheticBatches(self.bank, steps * batch), batch_size=batch, collate_fn=collate,
                            shuffle=True, generator=torch.Generator().manual_seed(SEED), **self.loader_kwargs())
        sched = warmup_schedule(self.optimizer, warmup_steps=round(WARMUP_FRAC * steps), total_steps=steps)
        h = fit(self.model, loader, optimizer=self.optimizer, loss_fn=self.loss_fn, device=self.device, num_epochs=1,
                scheduler=sched, max_grad_norm=MAX_GRAD_NORM, amp=self.amp, progress=False)
        return {"samples": steps * batch, "steps": steps, "loss": h["train_loss"][0],
                "flops_per_step": self.flops_per_step}


class TrainerArm(_Arm):
    def __init__(self, spec: dict) -> None:
        from transformers import Trainer, TrainingArguments
        from transformers.utils import logging as hf_logging

        super().__init__(spec)
        hf_logging.set_verbosity_error()
        kw = self.loader_kwargs()
        self.args = TrainingArguments(
            output_dir=tempfile.mkdtemp(prefix="sftcourse-gpu-bench-"), per_device_train_batch_size=self.settings["batch"],
            max_steps=1, learning_rate=LR, optim="adamw_torch_fused", weight_decay=WEIGHT_DECAY,
            lr_scheduler_type="linear", warmup_steps=0, max_grad_norm=MAX_GRAD_NORM, bf16=self.amp,
            use_cpu=self.device.type == "cpu", seed=SEED, dataloader_num_workers=kw["num_workers"],
            dataloader_pin_memory=kw["pin_memory"], dataloader_prefetch_factor=kw["prefetch_factor"],
            save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True)
        self.trainer = Trainer(model=self.model, args=self.args, data_collator=collate,
                               train_dataset=SyntheticBatches(self.bank, len(self.bank)))

    def run_round(self, steps: int) -> dict:
        # the same examples as fit's loader (shuffled by the Trainer's own sampler)
        self.trainer.train_dataset = SyntheticBatches(self.bank, steps * self.settings["batch"])
        self.trainer.args.max_steps = steps
        self.trainer.args.warmup_steps = round(WARMUP_FRAC * steps)
        result = self.trainer.train()
        return {"samples": result.global_step * self.settings["batch"], "steps": result.global_step, "loss": result.training_loss,
                "flops_per_step": self.flops_per_step}


def make_arm(spec: dict) -> _Arm:
    return FitArm(spec) if spec["arm"] == "fit" else TrainerArm(spec)


def peak_tflops(device_name: str, given: float | None) -> float | None:
    if given is not None:
        return given
    return next((tf for key, tf in PEAK_BF16_TFLOPS if key in device_name), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (only with --tiny, a dry run)")
    parser.add_argument("--tiny", action="store_true", help="tiny configs and short rounds: check the script end to end")
    parser.add_argument("--min-seconds", type=float, default=None, help="steady-state seconds per measured round (20; tiny: 0.5)")
    parser.add_argument("--rounds", type=int, default=1, help="measured rounds per arm, interleaved")
    parser.add_argument("--warmup-steps", type=int, default=None, help="steps per warm-up round (10; tiny: 2)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (default: from the table)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here: run on a GPU machine, or dry-run with --tiny --device cpu", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.tiny:
        parser.error("--device cpu is a dry run only: add --tiny")
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.5 if args.tiny else 20.0)
    warmup_steps = args.warmup_steps if args.warmup_steps is not None else (2 if args.tiny else 10)
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    peak = peak_tflops(device_name, args.peak_tflops)

    report: dict[str, Any] = {"benchmark": "gpu_fit_vs_trainer", "tiny": args.tiny,
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "device": device_name, "peak_bf16_tflops": peak, "versions": versions(),
                              "settings": {"lr": LR, "weight_decay": WEIGHT_DECAY, "warmup_frac": WARMUP_FRAC,
                                           "max_grad_norm": MAX_GRAD_NORM, "optimizer": "fused AdamW (both arms)",
                                           "amp": "bf16 autocast" if args.device.startswith("cuda") else "off (CPU)",
                                           "min_seconds": min_seconds, "rounds": args.rounds,
                                           "warmup_rounds": 2, "warmup_steps": warmup_steps},
                              "models": {}}
    if peak is None:
        print(f"no bf16 peak known for {device_name!r}: pass --peak-tflops to get MFU", flush=True)
    with tempfile.TemporaryDirectory(prefix="sftcourse-gpu-models-") as tmp:
        for name in args.models:
            settings = model_settings(name, args.tiny)
            if settings.get("lora") and not peft_available():
                print(f"== {name}: skipped, peft is not installed (pip install peft)", flush=True)
                report["models"][name] = {"skipped": "peft is not installed"}
                continue
            folder = Path(tmp) / settings["kind"]
            if not folder.exists():
                save_random_model(settings, folder)
            specs = {arm: {"arm": arm, "settings": settings, "model_dir": str(folder), "device": args.device}
                     for arm in ("fit", "trainer")}

            def steps_for_round(r: int, results: dict[str, dict]) -> int:
                if r < 2:
                    return warmup_steps
                # the FASTER arm's step time, so that both arms run at least min_seconds per round; the 1.25
                # margin covers a steady state that is a little faster than the last warm-up round
                step_s = min(res["rounds"][1]["wall_s"] / res["rounds"][1]["steps"] for res in results.values())
                return max(warmup_steps, math.ceil(1.25 * min_seconds / step_s))

            print(f"== {name} ({'tiny' if args.tiny else 'full size'}, batch {settings['batch']})", flush=True)
            results = run_interleaved(make_arm, specs, rounds=args.rounds, warmup_rounds=2,
                                      steps_for_round=steps_for_round, log=lambda s: print(s, flush=True))
            summary = summarize(results, "fit", "trainer")
            for arm_name, arm in summary["arms"].items():
                measured = [r for r in results[arm_name]["rounds"] if not r["warmup"]]
                steps, wall = sum(r["steps"] for r in measured), sum(r["wall_s"] for r in measured)
                achieved = arm["flops_per_step"] * steps / wall
                arm["measured_seconds"] = round(wall, 2)
                arm["steady_state_long_enough"] = min(r["wall_s"] for r in measured) >= min_seconds
                arm["achieved_tflops"] = float(f"{achieved / 1e12:.4g}")
                arm["mfu"] = float(f"{achieved / (peak * 1e12):.4g}") if peak else None
            summary["mfu"] = {a: s["mfu"] for a, s in summary["arms"].items()}
            summary["settings"] = {k: v for k, v in settings.items() if k != "config"} | {
                "config": settings.get("config", "library default")}
            summary["rounds"] = {a: res["rounds"] for a, res in results.items()}
            report["models"][name] = summary
            for arm_name, arm in summary["arms"].items():
                print(f"{name:13} {arm_name:8} {arm['samples_per_s']:10.1f} samples/s, "
                      f"{arm['achieved_tflops']:.2f} TFLOP/s, MFU {arm['mfu']}, loss {arm['loss_per_round'][0]:.3f} -> "
                      f"{arm['loss_per_round'][-1]:.3f}", flush=True)
            print(f"{name:13} ratio fit/Trainer {summary['ratio_fit_over_trainer']:.3f}", flush=True)
    report["ratio_fit_over_trainer"] = {m: s["ratio_fit_over_trainer"] for m, s in report["models"].items()
                                        if "ratio_fit_over_trainer" in s}
    report["mfu"] = {m: s["mfu"] for m, s in report["models"].items() if "mfu" in s}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(args.out) if args.out else (Path(__file__).resolve().parent / "results"
                                           / f"gpu_fit_vs_trainer_{'tiny_' if args.tiny else ''}{stamp}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}; ratio fit/Trainer {report['ratio_fit_over_trainer']}; MFU {report['mfu']}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
