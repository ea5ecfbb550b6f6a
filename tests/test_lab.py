"""Start the JupyterLab server the README's `lab` command starts, headless, and talk to it."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import course

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read()


@pytest.mark.slow
def test_lab_serves_the_course():
    port, token = _free_port(), secrets.token_hex(16)
    cmd = course.lab_command(Path(sys.executable), port=port, open_browser=False, token=token)
    cmd += ["--ServerApp.ip=127.0.0.1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, body = _get(f"{base}/lab", token)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                    pytest.fail(f"JupyterLab did not start on port {port}:\n{out[-3000:]}")
                time.sleep(0.5)
        assert status == 200 and b"JupyterLab" in body
        status, body = _get(f"{base}/api/contents/chapters", token)
        listed = {item["name"] for item in json.loads(body)["content"]}
        on_disk = {p.name for p in (ROOT / "chapters").glob("*.ipynb")}
        assert on_disk and on_disk <= listed
        req = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                     headers={"Authorization": f"token {token}"})
        urllib.request.urlopen(req, timeout=10)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
