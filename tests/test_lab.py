"""`make lab`: the trial's kernel spec, a chapter run through it giving its stored numbers, and the server answering
on its port with that kernel alone (and, with a browser, a stored notebook opening with it)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from helpers import lab, paths
from helpers.pdf import find_chromium, in_own_thread
from helpers.pipeline import INLINE_BACKEND, execute

CHAPTER = "03_baseline.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def kernel_prefix(tmp_path_factory, trial) -> Path:
    """The trial's kernel spec installed into a private prefix (the environment's own is left alone)."""
    prefix = tmp_path_factory.mktemp("lab-prefix")
    lab.install_kernel(trial, prefix)
    return prefix


def test_the_kernel_is_named_after_the_trial(trial, kernel_prefix):
    folder = kernel_prefix / "share" / "jupyter" / "kernels" / "nct06984497-book"
    spec = json.loads((folder / "kernel.json").read_text(encoding="utf-8"))
    assert spec["display_name"] == "NCT06984497 book"
    assert spec["language"] == "python"
    assert spec["argv"][0] == sys.executable
    assert spec["env"] == {"PYTHONPATH": str(paths.ROOT / "src"), "MPLBACKEND": INLINE_BACKEND}


def test_installing_again_updates_the_spec(trial, tmp_path):
    first = lab.install_kernel(trial, tmp_path)
    (first / "kernel.json").write_text("{}", encoding="utf-8")
    again = lab.install_kernel(trial, tmp_path)
    assert again == first
    assert json.loads((again / "kernel.json").read_text(encoding="utf-8"))["display_name"] == "NCT06984497 book"


@pytest.mark.parametrize("trial_id, name", [("NCT06984497", "nct06984497-book"), ("DEMO-CKD", "demo-ckd-book"),
                                            ("Trial 7/B (pilot)", "trial-7-b-pilot-book")])
def test_kernel_names_are_safe_slugs(trial_id, name):
    t = types.SimpleNamespace(id=trial_id)
    assert lab.kernel_name(t) == name
    assert lab.display_name(t) == f"{trial_id} book"


def test_the_server_offers_the_trial_kernel_alone_on_localhost(trial):
    cmd = lab.lab_command(trial, port=9123, browser=False)
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={paths.NOTEBOOKS}" in cmd
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=9123" in cmd
    assert "--ServerApp.port_retries=0" in cmd and "--ServerApp.open_browser=False" in cmd
    assert "--KernelSpecManager.allowed_kernelspecs=nct06984497-book" in cmd
    assert "--MappingKernelManager.default_kernel_name=nct06984497-book" in cmd


def test_a_missing_trial_file_is_an_error_not_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "helpers", "lab", "--trial", str(tmp_path / "none.yaml"),
                           "--prefix", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env=os.environ | {"PYTHONPATH": str(paths.ROOT / "src")})
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def _text_outputs(nb) -> list[list[dict]]:
    """Each code cell's outputs as text: streams, and every form of results and displays but images (glued numbers,
    under papermill's record type, and tables); figures are left out, as nbval leaves them."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        shown = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                shown.append({"stream": out.name, "text": out.text})
            elif out.output_type in ("display_data", "execute_result"):
                shown.append({m: v for m, v in out.data.items() if not m.startswith("image/")}
                             | {"glue": out.get("metadata", {}).get("scrapbook", {}).get("name")})
            else:
                shown.append({"error": f"{out.get('ename')}: {out.get('evalue')}"})
        cells.append(shown)
    return cells


def test_a_chapter_run_through_the_kernel_shows_its_stored_numbers(trial, kernel_prefix, tmp_path, monkeypatch):
    """The baseline chapter, run as JupyterLab runs it (the trial's kernel spec, started in notebooks/ without this
    process's PYTHONPATH or matplotlib backend), prints exactly its stored outputs: every glued number and table."""
    stored = nbformat.read(paths.NOTEBOOKS / CHAPTER, as_version=4)
    probe = nbformat.read(paths.NOTEBOOKS / CHAPTER, as_version=4)
    probe.cells.append(nbformat.v4.new_code_cell(
        "import helpers, matplotlib\nprint(helpers.__file__)\nprint(matplotlib.get_backend())"))
    probe.cells[-1]["id"] = "probe"
    src, out = tmp_path / CHAPTER, tmp_path / f"run-{CHAPTER}"
    nbformat.write(probe, src)
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_prefix / "share" / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    in_own_thread(execute, src, out, kernel_name=lab.kernel_name(trial), cwd=str(paths.NOTEBOOKS))
    ran = nbformat.read(out, as_version=4)
    *chapter, probed = _text_outputs(ran)
    assert probed[0]["text"].split() == [str(paths.ROOT / "src" / "helpers" / "__init__.py"), INLINE_BACKEND]
    expected = _text_outputs(stored)
    glued = {o["glue"]: o["application/papermill.record/text/plain"] for cell in expected for o in cell if o.get("glue")}
    assert {"verdict", "n_itt"} <= set(glued), f"the stored chapter glues no verdict or count: {glued}"
    assert chapter == expected


def _get(url: str, timeout: float = 5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


@pytest.mark.slow
def test_lab_starts_a_server_that_answers_on_its_port(trial, tmp_path):
    """`python -m helpers lab --no-browser --port P` installs the kernel spec and serves JupyterLab on P within a
    bound; it offers the trial's kernel alone, as the default; with a browser, a stored notebook (its metadata names
    python3) opens with that kernel. Runs on a copy of notebooks/, so nothing of the repository is saved over."""
    port, token = _free_port(), "lab-test-token"
    notebooks = tmp_path / "notebooks"
    shutil.copytree(paths.NOTEBOOKS, notebooks)
    jupyter = {f"JUPYTER_{k}_DIR": str(tmp_path / k.lower()) for k in ("RUNTIME", "CONFIG", "DATA")}
    env = os.environ | jupyter | {"JUPYTER_TOKEN": token, "PYTHONPATH": str(paths.ROOT / "src"),
                                  "HELPERS_NOTEBOOKS": str(notebooks)}
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "helpers", "lab", "--no-browser", "--port", str(port),
                                 "--prefix", str(tmp_path / "prefix")], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = _get(f"{base}/api/status?token={token}")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        assert status == 200, f"no answer on port {port} within 120 s:\n{log.read_text()[-3000:]}"
        _, body = _get(f"{base}/api/kernelspecs?token={token}")
        specs = json.loads(body)
        assert specs["default"] == "nct06984497-book"
        assert list(specs["kernelspecs"]) == ["nct06984497-book"]
        assert specs["kernelspecs"]["nct06984497-book"]["spec"]["display_name"] == "NCT06984497 book"
        _, body = _get(f"{base}/api/contents?token={token}")
        assert CHAPTER in {item["name"] for item in json.loads(body)["content"]}
        if find_chromium():
            in_own_thread(_open_in_browser, f"{base}/lab/tree/{CHAPTER}?token={token}",
                          f"{base}/api/sessions?token={token}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _open_in_browser(page_url: str, sessions_url: str) -> None:
    """Open a notebook in JupyterLab in headless Chromium and wait for its kernel: the trial's."""
    sync_api = pytest.importorskip("playwright.sync_api", exc_type=ImportError)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(page_url)
            deadline, sessions = time.monotonic() + 90, []
            while time.monotonic() < deadline and not sessions:
                time.sleep(1)
                sessions = [s for s in json.loads(_get(sessions_url)[1]) if s.get("kernel")]
            assert sessions, "the notebook started no kernel within 90 s"
            assert {s["kernel"]["name"] for s in sessions} == {"nct06984497-book"}
            page.get_by_text("NCT06984497 book").first.wait_for(timeout=30_000)
        finally:
            browser.close()
