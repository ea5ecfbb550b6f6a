"""Chapter 01 in a real browser: JupyterLab headless, Debian's Chromium driven by playwright.

Runs every cell through Lab's own "Run All Cells", checks that no cell errs, that the slider's label
is shown whole, that the learning-rate widget is the only figure of its cell (no stale static copy)
and that moving the slider redraws it, and saves a screenshot. The notebook runs from a copy in
tmp_path, so Lab's autosave never writes outputs into chapters/.

Needs the `chromium` executable (Debian/Ubuntu: `apt-get install chromium`; or set
SFTCOURSE_CHROMIUM to a Chromium/Chrome binary) and the `playwright` package (dev extras); playwright
downloads nothing here. Set SFTCOURSE_SCREENSHOT_DIR to keep the screenshot.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

import course

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "01_linear_regression.ipynb"
pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    for candidate in (os.environ.get("SFTCOURSE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_settings(root: Path) -> Path:
    """User settings for this Lab only: every cell in the DOM (no windowing), no news pop-up."""
    settings = root / "lab-settings"
    for name, value in {"notebook-extension/tracker": {"windowingMode": "none"},
                        "apputils-extension/notification": {"fetchNews": "false"}}.items():
        path = settings / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return settings


def _start_lab(root: Path, port: int, token: str) -> subprocess.Popen:
    cmd = course.lab_command(Path(sys.executable), port=port, open_browser=False, token=token)
    cmd = [a for a in cmd if not a.startswith("--ServerApp.root_dir=")]
    cmd += ["--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"]
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}   # the kernel must draw inline
    env.update(SFTCOURSE_PROFILE="quick", HF_HUB_OFFLINE="1", JUPYTERLAB_SETTINGS_DIR=str(_lab_settings(root)))
    log = open(root / "lab.log", "wb")          # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=5)
            return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start: {(root / 'lab.log').read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_chapter_01_runs_in_chromium_and_its_widget_responds(tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium found: install Debian's package (apt-get install chromium) or set SFTCOURSE_CHROMIUM")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extras)")
    (tmp_path / "chapters").mkdir()
    shutil.copy(ROOT / "chapters" / CHAPTER, tmp_path / "chapters" / CHAPTER)
    port, token = _free_port(), secrets.token_hex(16)
    lab = _start_lab(tmp_path, port, token)
    shots = Path(os.environ.get("SFTCOURSE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/chapters/{CHAPTER}?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
            # Lab's own command, the one behind Run ▸ Run All Cells
            # a command sent before the kernel is connected is dropped, so wait for it first
            page.wait_for_function("""() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
                return k && k.status === 'idle' && k.connectionStatus === 'connected'; }""", timeout=180_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            code_cells = page.locator(".jp-CodeCell")
            n_code = code_cells.count()
            counts_js = """() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
                const out = []; for (let i = 0; i < cells.length; i++) { const c = cells.get(i);
                if (c.type === 'code') out.push(c.executionCount); } return out; }"""
            deadline = time.monotonic() + 900
            while True:      # every code cell executed and the kernel idle again
                counts = page.evaluate(counts_js)
                idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0
                if len(counts) == n_code and all(counts) and idle:
                    break
                assert time.monotonic() < deadline, f"{sum(map(bool, counts))} of {n_code} cells ran in 15 minutes"
                time.sleep(2)

            slider_cell = page.locator(".jp-CodeCell", has=page.locator(".widget-slider")).first
            slider_cell.scroll_into_view_if_needed()
            label = slider_cell.locator(".widget-slider .widget-label").first
            assert label.inner_text().strip() == "lr / threshold"
            assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the slider's label is cut off"
            images = slider_cell.locator(".jp-OutputArea img")
            assert images.count() == 1, f"the widget's cell shows {images.count()} figures; only the live one belongs there"
            before = images.first.get_attribute("src")
            readout = slider_cell.locator(".widget-readout").first
            value_before = readout.inner_text()
            page.screenshot(path=str(shots / "ch01_widget_before.png"), full_page=False)
            slider_cell.locator(".noUi-handle").first.click()
            for _ in range(4):
                page.keyboard.press("ArrowRight")
            deadline = time.monotonic() + 120     # the kernel redraws the figure inside the widget
            while images.count() != 1 or images.first.get_attribute("src") == before:
                assert time.monotonic() < deadline, "moving the slider did not redraw the widget's figure"
                time.sleep(0.5)
            assert readout.inner_text() != value_before, "the slider's value did not change"
            assert images.count() == 1 and images.first.get_attribute("src") != before
            slider_cell.screenshot(path=str(shots / "ch01_widget_after.png"))
            page.screenshot(path=str(shots / "ch01_page.png"))

            page.keyboard.press("Control+s")      # save into tmp_path, then read the outputs back
            time.sleep(3)
            browser.close()
        saved = nbformat.read(tmp_path / "chapters" / CHAPTER, as_version=4)
        errors = [(i, o.ename, o.evalue) for i, c in enumerate(saved.cells) if c.cell_type == "code"
                  for o in c.outputs if o.output_type == "error"]
        assert not errors, f"cells raised errors in the browser: {errors}"
        assert sum(1 for c in saved.cells if c.cell_type == "code" and c.execution_count) == n_code
        assert (shots / "ch01_widget_after.png").stat().st_size > 10_000
    finally:
        _stop(lab)
