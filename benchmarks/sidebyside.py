"""Training arms side by side: one worker process per arm, taking turns (A, B, B, A, A, B, ...).

Each arm lives in its own process, so its peak memory is its own; only one arm runs at a time,
so on a machine shared with other jobs both see the same background load, round by round (the
order alternates, A B, B A, A B ..., so a load that drifts during a round pair favours neither).
A script defines ``make_arm(spec) -> arm`` at module level; ``arm.run_round()`` trains for one
round and returns at least ``{"samples": int, "loss": float}``, ``arm.sync()`` waits for the
device, and ``arm.final()`` returns anything to report at the end (peak GPU memory...).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import resource
import statistics
import time
import traceback
from collections.abc import Callable
from typing import Any


def rss_mib() -> float:
    """This process's resident memory now (Linux /proc), in MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.is_available(), "loadavg_1_5_15": list(os.getloadavg())}


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "transformers", "accelerate", "numpy")} | {
        "python": platform.python_version()}


def _serve(make_arm: Callable[[dict], Any], spec: dict, conn: Any) -> None:
    try:
        arm = make_arm(spec)
        conn.send({"ready": True, "rss_after_setup_mib": round(rss_mib(), 1)})
        while True:
            msg = conn.recv()  # "stop", "round" (the arm's default length) or {"steps": n}
            if msg == "stop":
                final = dict(arm.final()) if hasattr(arm, "final") else {}
                final["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
                conn.send(final)
                return
            steps = msg.get("steps") if isinstance(msg, dict) else None
            arm.sync()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            out = dict(arm.run_round() if steps is None else arm.run_round(steps))
            arm.sync()
            out["wall_s"] = time.perf_counter() - wall0
            out["cpu_s"] = time.process_time() - cpu0  # less sensitive to other jobs than wall time
            conn.send(out)
    except BaseException:  # report to the parent instead of leaving it waiting on the pipe
        conn.send({"error": traceback.format_exc()})
        raise


def run_interleaved(make_arm: Callable[[dict], Any], specs: dict[str, dict], *, rounds: int,
                    warmup_rounds: int = 1, log: Callable[[str], None] = print,
                    steps_for_round: Callable[[int, dict[str, dict]], int | None] | None = None) -> dict[str, dict]:
    """Start one worker per arm (one after the other), then run ``warmup_rounds + rounds`` rounds,
    each arm in turn, in the order of ``specs`` in even rounds and reversed in odd ones. Returns per arm: setup info, every round, final info.

    ``steps_for_round(r, results_so_far)`` may set the number of steps of round ``r`` (the same for
    every arm), e.g. from the warm-up's step time; None keeps the arm's default (one epoch)."""
    ctx = mp.get_context("spawn")  # a fresh interpreter per arm (and the only start method CUDA allows)
    workers: dict[str, tuple[Any, Any]] = {}
    results: dict[str, dict] = {}
    try:
        for name, spec in specs.items():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(make_arm, spec, child), daemon=True)
            proc.start()
            workers[name] = (proc, parent)
            results[name] = {"spec": spec, "setup": _recv(parent, name), "rounds": []}
            log(f"[{name}] ready, RSS {results[name]['setup']['rss_after_setup_mib']} MiB")
        for r in range(warmup_rounds + rounds):
            steps = steps_for_round(r, results) if steps_for_round is not None else None
            order = list(workers.items())
            for name, (_, conn) in (order if r % 2 == 0 else order[::-1]):  # A, B, then B, A: drift cancels
                conn.send("round" if steps is None else {"steps": steps})
                out = _recv(conn, name)
                out["warmup"] = r < warmup_rounds
                results[name]["rounds"].append(out)
                log(f"round {r}{' (warm-up)' if out['warmup'] else ''} [{name}] {out['samples']} samples in "
                    f"{out['wall_s']:.2f} s wall / {out['cpu_s']:.2f} s CPU: "
                    f"{out['samples'] / out['wall_s']:.1f} samples/s, loss {out['loss']:.4f}")
        for name, (_, conn) in workers.items():
            conn.send("stop")
            results[name]["final"] = _recv(conn, name)
    finally:
        for proc, _ in workers.values():
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
    return results


def _recv(conn: Any, name: str) -> dict:
    out = conn.recv()
    if "error" in out:
        raise RuntimeError(f"arm {name!r} failed in its worker process:\n{out['error']}")
    return out


def summarize(results: dict[str, dict], fit: str, trainer: str) -> dict[str, Any]:
    """Throughput per arm over the measured rounds, and fit's throughput over the Trainer's.

    ``ratio_fit_over_trainer``: total samples / total wall time of ``fit`` divided by the same for
    ``trainer``; the per-round ratios (consecutive turns) and their median show the spread.
    """
    arms: dict[str, dict] = {}
    for name, res in results.items():
        measured = [r for r in res["rounds"] if not r["warmup"]]
        samples = sum(r["samples"] for r in measured)
        wall = sum(r["wall_s"] for r in measured)
        cpu = sum(r["cpu_s"] for r in measured)
        losses = [r["loss"] for r in res["rounds"]]
        arm = {"samples_per_s": round(samples / wall, 2), "samples_per_cpu_s": round(samples / cpu, 2),
               "measured_rounds": len(measured), "samples_per_round": measured[0]["samples"],
               "round_samples_per_s": [round(r["samples"] / r["wall_s"], 2) for r in measured],
               "loss_per_round": [round(x, 4) for x in losses], "loss_falls": losses[-1] < losses[0],
               "rss_after_setup_mib": res["setup"]["rss_after_setup_mib"], **res.get("final", {})}
        if "tokens" in measured[0]:
            arm["tokens_per_s"] = round(sum(r["tokens"] for r in measured) / wall, 1)
        for key in ("flops_per_step", "steps"):
            if key in measured[0]:
                arm[key] = measured[0][key]
        arms[name] = arm
    per_round = [arms[fit]["round_samples_per_s"][i] / arms[trainer]["round_samples_per_s"][i]
                 for i in range(min(len(arms[fit]["round_samples_per_s"]), len(arms[trainer]["round_samples_per_s"])))]
    return {"arms": arms,
            "ratio_fit_over_trainer": round(arms[fit]["samples_per_s"] / arms[trainer]["samples_per_s"], 3),
            "ratio_fit_over_trainer_cpu_time": round(arms[fit]["samples_per_cpu_s"]
                                                     / arms[trainer]["samples_per_cpu_s"], 3),
            "ratio_per_round": [round(x, 3) for x in per_round],
            "ratio_median_of_rounds": round(statistics.median(per_round), 3)}
