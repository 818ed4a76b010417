"""`make preview`: the published book served with the reload script, the reload signal following the published tree,
failed builds reported while the last good book stays; and, on a copy of the project, an edited page served again
(and reloaded in an open browser) within a bound."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import paths, preview
from helpers.pdf import find_chromium, in_own_thread


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _status(base: str) -> dict:
    return json.loads(_get(base + preview.STATUS_PATH))


def _publish(build_dir: Path, name: str, page: str) -> Path:
    """A published tree as a build leaves it: <build_dir>.d/<name>/html, <build_dir> a symlink swapped in one step."""
    tree = build_dir.with_name(build_dir.name + ".d") / name
    (tree / "html" / "sub").mkdir(parents=True)
    (tree / "html" / "index.html").write_text(f"<html><body><p>{page}</p></body></html>", encoding="utf-8")
    (tree / "html" / "sub" / "index.html").write_text("<html><BODY>sub</BODY></html>", encoding="utf-8")
    (tree / "html" / "style.css").write_text("body{}</body>", encoding="utf-8")
    link = build_dir.with_name(".link")
    os.symlink(tree, link)
    os.replace(link, build_dir)
    return tree


@pytest.fixture()
def served(tmp_path):
    build_dir, state = tmp_path / "_build", preview.State()
    server = preview.serve(build_dir, state, port=0)
    yield build_dir, state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_script_goes_before_the_closing_body_tag():
    page = b"<html><body><p>x</p></body>\n</html>"
    out = preview.inject(page, "build-1")
    assert out.startswith(b"<html><body><p>x</p><script>") and out.endswith(b"</script>\n</body>\n</html>")
    assert b'var served = "build-1"' in out and preview.STATUS_PATH.encode() in out
    assert preview.inject(b"<p>no body</p>", "v").startswith(b"<p>no body</p><script>")


def test_pages_carry_the_script_and_other_files_are_served_as_they_are(served):
    build_dir, state, base = served
    _publish(build_dir, "build-aaa", "first")
    page = _get(base + "/")
    assert b"<p>first</p>" in page and b'var served = "build-aaa"' in page
    assert page.index(b"<script>") < page.lower().rindex(b"</body>")
    assert b'var served = "build-aaa"' in _get(base + "/sub/")
    assert b'var served = "build-aaa"' in _get(base + "/index.html?x=1")
    assert _get(base + "/style.css") == b"body{}</body>"
    assert _status(base) == {"version": "build-aaa", "building": False, "error": None}


def test_the_reload_signal_follows_the_published_tree(served):
    build_dir, state, base = served
    first = _publish(build_dir, "build-aaa", "first")
    assert _status(base)["version"] == "build-aaa"
    _publish(build_dir, "build-bbb", "second")
    shutil.rmtree(first)
    assert _status(base)["version"] == "build-bbb"
    page = _get(base + "/")
    assert b"<p>second</p>" in page and b'var served = "build-bbb"' in page


def test_a_failed_build_is_reported_while_the_last_good_book_is_served(served):
    build_dir, state, base = served
    _publish(build_dir, "build-aaa", "good")
    state.update(building=True)
    assert _status(base)["building"] is True
    state.update(building=False, error="error: notebook 03_baseline.ipynb failed in cell 2", failed_on="build-aaa")
    assert _status(base) == {"version": "build-aaa", "building": False,
                             "error": "error: notebook 03_baseline.ipynb failed in cell 2"}
    assert b"<p>good</p>" in _get(base + "/")
    _publish(build_dir, "build-bbb", "mended")
    assert _status(base) == {"version": "build-bbb", "building": False, "error": None}


def test_a_blinded_preview_shows_no_arm_in_a_build_error(trial, tmp_path, monkeypatch):
    monkeypatch.setenv("BLINDING_KEY", "preview-test")
    state = preview.State(mask=preview.blinded_mask(paths.DEFAULT_TRIAL))
    names = [name for arm in trial.arms for name in (arm.label, arm.description)]
    state.update(error="error: blinded build: 1 file(s) name an arm (" + ", ".join(repr(n) for n in names) + ")")
    shown = state.status(tmp_path / "_build")["error"]
    assert shown.startswith("error: blinded build: 1 file(s) name an arm")
    assert not [n for n in names if n.lower() in shown.lower()], shown
    assert "Arm A" in shown and "Arm B" in shown


def test_before_any_book_every_page_says_so_and_waits_for_one(served):
    build_dir, state, base = served
    page = _get(base + "/")
    assert b"No book has been published yet" in page and b'var served = ""' in page
    assert b"No book has been published yet" in _get(base + "/intro.html")
    assert _status(base)["version"] == ""


def test_a_taken_port_is_an_error_naming_it(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(preview.PreviewError, match=f"127.0.0.1:{port}"):
            preview.run([], tmp_path / "_build", paths.trial_file(), port=port)


def test_the_watched_sources_are_what_a_build_reads(tmp_path):
    roots = preview.watched(paths.trial_file(), "synthetic")
    assert {paths.NOTEBOOKS, paths.BOOK, paths.ROOT / "src" / "helpers", paths.TRIALS} <= set(roots)
    export, mapping = tmp_path / "export", tmp_path / "export.mapping.yaml"
    export.mkdir()
    mapping.write_text("files: {}\n", encoding="utf-8")
    assert {export, mapping} <= set(preview.watched(paths.trial_file(), str(export), str(mapping)))
    assert mapping not in preview.watched(paths.trial_file(), str(export), "none")


def test_a_failing_build_leaves_its_message_for_the_page(tmp_path):
    state, lines = preview.State(), []
    build_dir = tmp_path / "_build"
    proc = preview.rebuild(["--cutoff", "not-a-date", "--build-dir", str(build_dir)], build_dir, state, lines.append)
    assert proc.returncode == 1
    assert state.building is False and state.error.startswith("error:") and "not-a-date" in state.error
    assert any(line.startswith("[preview] the build failed") for line in lines)
    assert state.status(build_dir)["error"] == state.error


# --- the whole loop, on a copy of the project ---------------------------------------------------------------------

PROJECT_PARTS = ("src", "notebooks", "book", "trials", "data", "_config.yml", "_toc.yml")
KEPT_CHAPTERS = ("00_summary", "03_baseline")
FIRST_BUILD_S, REBUILD_S = 600, 300


def _copy_project(dest: Path) -> Path:
    """The sources a build reads, copied: the preview runs there, so editing a page never touches the repository.
    The copy's book keeps two chapters (the summary and the cheapest analysis chapter), so its first build takes
    a minute rather than the whole book's several: the loop under test is the same."""
    for part in PROJECT_PARTS:
        src = paths.ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "generated",
                                                                             ".ipynb_checkpoints"))
        else:
            shutil.copy2(src, dest / part)
    for nb in (dest / "notebooks").glob("*.ipynb"):
        if nb.stem not in KEPT_CHAPTERS:
            nb.unlink()
    toc = dest / "_toc.yml"
    dropped = re.compile(r"^\s*- file: book/generated/(\d\d_\w+)\s*$")
    toc.write_text("".join(line for line in toc.read_text(encoding="utf-8").splitlines(keepends=True)
                           if not (m := dropped.match(line)) or m.group(1) in KEPT_CHAPTERS), encoding="utf-8")
    return dest


def _wait(what: str, check, seconds: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"preview exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
        try:
            if (result := check()):
                return result
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {seconds} s\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_an_edited_page_is_rebuilt_served_and_reloaded(tmp_path):
    """On a copy of the project: the preview builds the book, serves it; an edit of book/intro.md is served within
    REBUILD_S with a new reload signal (and an open page reloads by itself); a page that breaks the build leaves
    that book served with the error reported; mending it publishes again; SIGTERM stops everything cleanly."""
    in_own_thread(_edit_and_watch, tmp_path)


def _shows(text: str) -> str:
    """A browser predicate, safe while the page reloads (no body yet)."""
    return f"document.body !== null && document.body.innerText.includes({json.dumps(text)})"


def _edit_and_watch(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "project")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base, log = f"http://127.0.0.1:{port}", tmp_path / "preview.log"
    env = os.environ | {"PYTHONPATH": str(project / "src")}
    env.pop("HELPERS_NOTEBOOKS", None)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "helpers", "preview", "--port", str(port), "--jobs", "2"],
                                cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    intro = project / "book" / "intro.md"
    original = intro.read_text(encoding="utf-8")
    browser = page = None
    try:
        first = _wait("the first book", lambda: _status(base)["version"], FIRST_BUILD_S, proc, log)
        assert b"var served" in _get(f"{base}/book/intro.html")
        if find_chromium():
            sync_api = pytest.importorskip("playwright.sync_api", exc_type=ImportError)
            pw = sync_api.sync_playwright().start()
            browser = pw.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"{base}/book/intro.html")

        intro.write_text(original + "\n\nPreview marker one.\n", encoding="utf-8")
        second = _wait("the edited page served", lambda: b"Preview marker one." in _get(f"{base}/book/intro.html")
                       and _status(base)["version"], REBUILD_S, proc, log)
        assert second != first
        if page is not None:
            page.wait_for_function(_shows("Preview marker one."), timeout=30_000)

        intro.write_text(original + "\n\nPreview marker one. {numref}`no-such-table`\n", encoding="utf-8")
        error = _wait("the failed build reported", lambda: _status(base)["error"], REBUILD_S, proc, log)
        assert "jupyter-book build failed" in error and "no-such-table" in error and "\x1b" not in error
        assert _status(base)["version"] == second
        assert b"Preview marker one." in _get(f"{base}/book/intro.html")
        if page is not None:
            page.get_by_text("The last build failed").wait_for(timeout=30_000)

        intro.write_text(original + "\n\nPreview marker two.\n", encoding="utf-8")
        _wait("the mended page served", lambda: b"Preview marker two." in _get(f"{base}/book/intro.html"),
              REBUILD_S, proc, log)
        assert _status(base)["error"] is None, "a newer book than the failed build's shows no error"
        if page is not None:
            page.wait_for_function(_shows("Preview marker two."), timeout=30_000)
            assert page.locator("pre", has_text="The last build failed").count() == 0
    finally:
        if browser is not None:
            browser.close()
            pw.stop()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "[preview] stopped" in log.read_text()
    assert not list((project / "_build.d").glob("staging-*"))
    assert (paths.ROOT / "book" / "intro.md").read_text(encoding="utf-8") == original
