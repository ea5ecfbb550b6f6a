"""Run ``torchrun`` / ``accelerate launch`` as a subprocess that cannot hang a notebook or CI.

    cmd = torchrun_command("sftcourse.ddp_train", ["--engine", "ddp", "--out", "runs/ddp"],
                           nproc_per_node=2, log_dir="runs/ddp/logs")
    result = launch(cmd, timeout=120)

- every rank's stdout/stderr goes to its own file under ``log_dir`` (``--redirects 3`` / ``--tee 3``),
  so nothing interleaves; the launcher's own console output goes to ``log_dir/launcher.log``;
- if a rank fails, :class:`LaunchError` names the rank that failed FIRST (the root cause; the
  others usually die of "connection closed by peer" afterwards) with its error and traceback tail,
  read from the error file torch elastic writes for a ``@record``-decorated ``main``;
- if the job outlives ``timeout`` (a rank hangs in a collective, say), the whole process tree is
  terminated (torchrun starts each worker in its own session, so killing torchrun's process group
  would not reach them) and :class:`LaunchTimeout` shows each rank's last log line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# Errors a rank reports because ANOTHER rank died first (its peer closed the connection).
_SECONDARY = ("Connection closed by peer", "Connection reset by peer", "remote worker crashing",
              "SIGTERM", "Signal 15", "SignalException", "NCCL communicator was aborted")


@dataclass
class RankFailure:
    """One rank's failure as torch elastic recorded it."""

    rank: int
    message: str  # "ValueError: ..."
    traceback: str
    timestamp: int
    error_file: Path

    @property
    def secondary(self) -> bool:
        """Whether this looks like a consequence of another rank's death."""
        return any(s in self.message or s in self.traceback for s in _SECONDARY)


class LaunchError(RuntimeError):
    """A launched job exited with an error; ``failure`` is the root-cause rank's record, if any."""

    def __init__(self, message: str, *, returncode: int | None, failure: RankFailure | None, log_dir: Path) -> None:
        super().__init__(message)
        self.returncode, self.failure, self.log_dir = returncode, failure, log_dir


class LaunchTimeout(TimeoutError):
    """A launched job ran past its timeout and was killed (with all its processes)."""

    def __init__(self, message: str, *, killed: int, log_dir: Path) -> None:
        super().__init__(message)
        self.killed, self.log_dir = killed, log_dir


@dataclass
class LaunchResult:
    """A finished job: wall-clock seconds and where its logs are."""

    seconds: float
    log_dirs: list[Path] = field(default_factory=list)


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now (for a rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_command(module: str, args: Sequence[str], *, nproc_per_node: int, log_dir: str | Path,
                     nnodes: int = 1, node_rank: int = 0, master_addr: str = "127.0.0.1",
                     master_port: int | None = None) -> list[str]:
    """``python -m torch.distributed.run ... -m module args``: torchrun with per-rank log files.

    One node: ``--standalone`` (a local rendezvous on a free port). Several nodes: the static
    rendezvous every node is started with, ``--nnodes N --node-rank i --master-addr A --master-port P``
    (run one such command per node; on one machine, each with its own ``log_dir``).
    """
    _check_positive(nproc_per_node=nproc_per_node, nnodes=nnodes)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc_per_node)]
    if nnodes == 1:
        cmd += ["--standalone"]
    else:
        if not 0 <= node_rank < nnodes:
            raise ValueError(f"node_rank must be in [0, {nnodes - 1}] for nnodes={nnodes}, got {node_rank}")
        if master_port is None:
            raise ValueError("several nodes need one master_port that every node's command shares; "
                             "pick one with free_port() and pass it to each command")
        cmd += ["--nnodes", str(nnodes), "--node-rank", str(node_rank), "--master-addr", master_addr,
                "--master-port", str(master_port)]
    cmd += ["--log-dir", str(log_dir), "--redirects", "3", "--max-restarts", "0", "--shutdown-timeout", "5",
            "-m", module, *map(str, args)]
    return cmd


def accelerate_command(module: str, args: Sequence[str], *, num_processes: int, log_dir: str | Path,
                       port: int | None = None) -> list[str]:
    """``accelerate launch --multi_gpu --num_processes N ... -m module args`` with per-rank log files.

    ``--multi_gpu`` is what starts N processes even on CPU (the script then asks for
    ``Accelerator(cpu=True)``); ``--num_machines 1 --mixed_precision no --dynamo_backend no`` stand in
    for the config file ``accelerate config`` would write, so the run does not depend on one.
    """
    _check_positive(num_processes=num_processes)
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port or free_port()), "--log_dir", str(log_dir), "--tee", "3",
            "-m", module, *map(str, args)]


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def _log_dir_of(cmd: Sequence[str]) -> Path:
    for flag in ("--log-dir", "--log_dir"):
        if flag in cmd:
            return Path(cmd[list(cmd).index(flag) + 1])
    raise ValueError("the command has no --log-dir: build it with torchrun_command() or accelerate_command(), "
                     "which give every rank its own log file")


def rank_failures(log_dir: str | Path) -> list[RankFailure]:
    """The failures recorded under ``log_dir``, root cause first (earliest, not a peer's echo)."""
    failures = []
    for path in Path(log_dir).rglob("error.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))["message"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(record, str):  # torch elastic writes a plain string for some errors
            record = {"message": record, "extraInfo": {}}
        info = record.get("extraInfo", {})
        failures.append(RankFailure(rank=_rank_of(path), message=str(record.get("message", "")),
                                    traceback=str(info.get("py_callstack", "")),
                                    timestamp=int(info.get("timestamp", 0) or 0), error_file=path))
    return sorted(failures, key=lambda f: (f.secondary, f.timestamp, f.rank))


def _rank_of(error_file: Path) -> int:
    """torchrun's layout: <log_dir>/<run id>/attempt_<k>/<local rank>/error.json."""
    try:
        return int(error_file.parent.name)
    except ValueError:
        return -1


def _rank_logs(log_dir: Path) -> dict[int, list[Path]]:
    logs: dict[int, list[Path]] = {}
    for path in sorted(log_dir.rglob("*.log")):
        if path.parent.name.isdigit():
            logs.setdefault(int(path.parent.name), []).append(path)
    return logs


def _last_line(paths: Sequence[Path]) -> str:
    lines = []
    for p in paths:
        try:
            lines += [ln for ln in p.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        except OSError:
            pass
    return lines[-1] if lines else "(nothing logged: still starting, or waiting in a collective)"


def _tail(text: str, n: int) -> str:
    lines = text.rstrip().splitlines()
    return "\n".join(lines[-n:])


def _terminate_tree(procs: Sequence[subprocess.Popen], grace: float = 3.0) -> int:
    """SIGTERM every process in the trees rooted at ``procs``, then SIGKILL what is left; return the count."""
    tree: list[psutil.Process] = []
    for p in procs:
        try:
            root = psutil.Process(p.pid)
            tree += root.children(recursive=True) + [root]  # collected first: children outlive a killed parent
        except psutil.NoSuchProcess:
            pass
    for proc in tree:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
    for p in procs:
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL was sent
            pass
    return len(tree)


def launch(commands: Sequence[str] | Sequence[Sequence[str]], *, timeout: float,
           env: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> LaunchResult:
    """Run one launcher command (or several at once: one per simulated node) and wait for all.

    Raises :class:`LaunchError` (the first failing rank's error) as soon as one command fails,
    after stopping the others, and :class:`LaunchTimeout` after ``timeout`` seconds. Each
    command must carry ``--log-dir``/``--log_dir`` (see :func:`torchrun_command`).
    """
    if not commands:
        raise ValueError("commands is empty: pass a command list such as torchrun_command(...)")
    cmds = [list(commands)] if isinstance(commands[0], str) else [list(c) for c in commands]  # type: ignore[arg-type]
    if not timeout or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    log_dirs = [_log_dir_of(c) for c in cmds]
    full_env = {**os.environ, **(env or {})}
    procs: list[subprocess.Popen] = []
    files = []
    start = time.perf_counter()
    try:
        for cmd, log_dir in zip(cmds, log_dirs):
            log_dir.mkdir(parents=True, exist_ok=True)
            out = open(log_dir / "launcher.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
            files.append(out)
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                                          start_new_session=True))
        while True:
            codes = [p.poll() for p in procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                _terminate_tree(procs)
                raise _failure(cmds[failed[0]], codes[failed[0]], log_dirs[failed[0]], len(cmds))
            if all(c == 0 for c in codes):
                return LaunchResult(seconds=time.perf_counter() - start, log_dirs=log_dirs)
            if time.perf_counter() - start > timeout:
                killed = _terminate_tree(procs)
                raise _timeout(timeout, killed, log_dirs)
            time.sleep(0.1)
    except BaseException:
        _terminate_tree(procs)  # KeyboardInterrupt in a notebook included: leave nothing behind
        raise
    finally:
        for f in files:
            f.close()


def _failure(cmd: Sequence[str], code: int | None, log_dir: Path, n_cmds: int) -> LaunchError:
    failures = rank_failures(log_dir)
    where = f" (node command {n_cmds}, logs in {log_dir})" if n_cmds > 1 else f" (logs in {log_dir})"
    if failures:
        f = failures[0]
        tb = _tail(f.traceback, 8)
        others = sorted({g.rank for g in failures[1:]})
        also = f"; rank(s) {others} failed after it" if others else ""
        msg = (f"rank {f.rank} failed first: {f.message}{also}{where}\n"
               f"--- rank {f.rank}'s traceback (last lines) ---\n{tb}")
        return LaunchError(msg, returncode=code, failure=f, log_dir=log_dir)
    launcher_log = (log_dir / "launcher.log").read_text(encoding="utf-8", errors="replace")
    per_rank = "\n".join(f"rank {r}: {_last_line(paths)}" for r, paths in _rank_logs(log_dir).items())
    msg = (f"`{' '.join(cmd[:4])} ...` exited with code {code}{where}; no rank recorded an error "
           f"(decorate the script's main with torch.distributed.elastic.multiprocessing.errors.record to get one)\n"
           f"{per_rank}\n--- launcher output (last lines) ---\n{_tail(launcher_log, 15)}")
    return LaunchError(msg, returncode=code, failure=None, log_dir=log_dir)


def _timeout(timeout: float, killed: int, log_dirs: Sequence[Path]) -> LaunchTimeout:
    lines = []
    for d in log_dirs:
        for r, paths in _rank_logs(d).items():
            lines.append(f"rank {r}{'' if len(log_dirs) == 1 else f' ({d.name})'}: last line: {_last_line(paths)}")
    msg = (f"the job did not finish within {timeout:g} s and was killed ({killed} processes); a rank that "
           "never reaches a collective leaves the others waiting in it. Each rank's last log line:\n"
           + ("\n".join(lines) or "(no rank logs)"))
    return LaunchTimeout(msg, killed=killed, log_dir=log_dirs[0])
