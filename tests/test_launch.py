"""sftcourse.launch: commands, root-cause selection, failing and hanging jobs."""

from __future__ import annotations

import json
import sys
import time

import psutil
import pytest

from sftcourse.launch import (
    LaunchError,
    LaunchTimeout,
    accelerate_command,
    free_port,
    launch,
    rank_failures,
    torchrun_command,
)


def test_torchrun_command_one_node_and_several():
    one = torchrun_command("sftcourse.ddp_train", ["--steps", 3], nproc_per_node=2, log_dir="L")
    assert one[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--standalone" in one
    assert one[-4:] == ["-m", "sftcourse.ddp_train", "--steps", "3"]
    assert one[one.index("--log-dir") + 1] == "L" and one[one.index("--redirects") + 1] == "3"
    node1 = torchrun_command("m", [], nproc_per_node=1, log_dir="L", nnodes=2, node_rank=1, master_port=1234)
    assert "--standalone" not in node1
    for flag, value in [("--nnodes", "2"), ("--node-rank", "1"), ("--master-addr", "127.0.0.1"), ("--master-port", "1234")]:
        assert node1[node1.index(flag) + 1] == value
    with pytest.raises(ValueError, match="node_rank must be in"):
        torchrun_command("m", [], nproc_per_node=1, log_dir="L", nnodes=2, node_rank=2, master_port=1)
    with pytest.raises(ValueError, match="master_port"):
        torchrun_command("m", [], nproc_per_node=1, log_dir="L", nnodes=2)
    with pytest.raises(ValueError, match="nproc_per_node must be a positive int"):
        torchrun_command("m", [], nproc_per_node=0, log_dir="L")


def test_accelerate_command_uses_multi_gpu_and_a_log_dir():
    cmd = accelerate_command("sftcourse.accelerate_train", ["--cpu"], num_processes=2, log_dir="L", port=4321)
    assert "--multi_gpu" in cmd and cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[cmd.index("--main_process_port") + 1] == "4321" and cmd[cmd.index("--log_dir") + 1] == "L"
    assert 0 < free_port() < 65536


def test_launch_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="commands is empty"):
        launch([], timeout=5)
    with pytest.raises(ValueError, match="--log-dir"):
        launch([sys.executable, "-c", "pass"], timeout=5)
    with pytest.raises(ValueError, match="timeout"):
        launch([sys.executable, "-c", "pass", "--log-dir", str(tmp_path)], timeout=0)


def _error_file(root, rank, message, timestamp, callstack=""):
    d = root / "run" / "attempt_0" / str(rank)
    d.mkdir(parents=True)
    record = {"message": {"message": message, "extraInfo": {"py_callstack": callstack or message, "timestamp": str(timestamp)}}}
    (d / "error.json").write_text(json.dumps(record))


def test_rank_failures_put_the_root_cause_first(tmp_path):
    # rank 0 died of its peer's crash in the same second; rank 1's own error is the root cause
    _error_file(tmp_path, 0, "RuntimeError: [pair.cc:553] Connection closed by peer [127.0.0.1]:1", 100)
    _error_file(tmp_path, 1, "ValueError: bad shard", 100)
    _error_file(tmp_path, 2, "KeyError: 'x'", 105)
    assert [f.rank for f in rank_failures(tmp_path)] == [1, 2, 0]
    assert rank_failures(tmp_path / "nothing") == []


def test_a_plain_failing_command_reports_its_exit_code_and_output(tmp_path):
    code = "import sys; print('about to fail'); sys.exit(3)"
    with pytest.raises(LaunchError, match="exited with code 3") as info:
        launch([sys.executable, "-c", code, "--log-dir", str(tmp_path)], timeout=60)
    assert "about to fail" in str(info.value) and info.value.returncode == 3


def test_timeout_kills_the_whole_tree_including_children_in_their_own_session(tmp_path):
    # like torchrun: the parent starts a worker in a new session, then both wait forever
    code = ("import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True); "
            "print(c.pid, flush=True); time.sleep(600)")
    start = time.perf_counter()
    with pytest.raises(LaunchTimeout, match="did not finish within 3 s") as info:
        launch([sys.executable, "-c", code, "--log-dir", str(tmp_path)], timeout=3)
    assert time.perf_counter() - start < 15
    child = int((tmp_path / "launcher.log").read_text().split()[0])
    assert info.value.killed == 2 and not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


def _strays(marker: str) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if any(marker in part for part in (p.info["cmdline"] or [])):
            out.append(p.info["pid"])
    return out


@pytest.mark.slow
def test_a_failing_rank_is_named_with_its_error_quickly(tmp_path):
    args = ["--engine", "ddp", "--steps", 3, "--fail-rank", 1, "--out", tmp_path / "out", "--cpu"]
    start = time.perf_counter()
    with pytest.raises(LaunchError) as info:
        launch(torchrun_command("sftcourse.ddp_train", args, nproc_per_node=2, log_dir=tmp_path / "logs"), timeout=240)
    assert time.perf_counter() - start < 120  # torchrun stops the healthy rank; nothing waits for a timeout
    message = str(info.value)
    assert message.startswith("rank 1 failed first: RuntimeError: rank 1 failed on purpose")
    assert info.value.failure.rank == 1 and len(message.splitlines()) < 20  # not a 200-line interleaved log
    assert not _strays(str(tmp_path))


@pytest.mark.slow
def test_a_hung_rank_is_killed_by_the_timeout(tmp_path):
    args = ["--engine", "ddp", "--steps", 3, "--hang-rank", 0, "--out", tmp_path / "out", "--cpu"]
    start = time.perf_counter()
    with pytest.raises(LaunchTimeout, match="did not finish within 20 s"):
        launch(torchrun_command("sftcourse.ddp_train", args, nproc_per_node=2, log_dir=tmp_path / "logs"), timeout=20)
    assert time.perf_counter() - start < 40
    assert not _strays(str(tmp_path))
