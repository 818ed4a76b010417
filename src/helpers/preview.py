"""A live preview of the book (``make preview``): the published HTML served on localhost, rebuilt by the project's own
build when a source changes, and the open page reloaded.

The server reads every file from the published tree at the moment of the request (``_build`` is a symlink that a
build swaps in one step), so a page is always whole and a failed build leaves the last good book served. Each HTML
page it sends carries a small script that polls ``/__preview``: the published tree's name (a new one per publish)
and the last build's error. The page reloads when the tree changes, and shows the error over the page while it lasts.

A change under notebooks/, book/, src/helpers/, the trial file's folder, the export folder or the export mapping
starts ``python -m helpers build`` with the preview's options in a new process (so that edited helpers are imported
afresh); the build's own freshness check decides what to run again. Changes made during a build start the next one.
"""
from __future__ import annotations

import collections
import http.server
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from helpers import paths

DEFAULT_PORT = 8000
STATUS_PATH = "/__preview"
ERROR_LINES = 40
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colours in jupyter-book's messages, left out of the page

RELOAD_SCRIPT = """<script>
(function () {
  var served = %(version)s, box = null, badge = null;
  function note(el, css, text) {
    if (!text) { if (el) { el.remove(); } return null; }
    if (!el) { el = document.createElement(css.tag); el.setAttribute("style", css.style); document.body.appendChild(el); }
    el.textContent = text;
    return el;
  }
  function poll() {
    fetch("%(status)s", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (s) {
      if (s.version && s.version !== served) { location.reload(); return; }
      box = note(box, {tag: "pre", style: "position:fixed;left:0;right:0;bottom:0;max-height:45vh;overflow:auto;" +
        "margin:0;padding:1em;z-index:10000;background:#fff3f3;color:#7a0000;border-top:3px solid #c00;" +
        "font:12px/1.4 monospace;white-space:pre-wrap"}, s.error ? "The last build failed; this is the last good " +
        "book.\\n\\n" + s.error : "");
      badge = note(badge, {tag: "div", style: "position:fixed;top:0.5em;right:0.5em;z-index:10001;padding:0.2em 0.6em;" +
        "background:#333;color:#fff;font:12px sans-serif;border-radius:3px"}, s.building ? "rebuilding\\u2026" : "");
    }).catch(function () {}).then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
</script>
"""

NO_BOOK = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Preview: no book yet</title></head>
<body><p>No book has been published yet; the first build is running or failed (see the console).
This page reloads when a book is published.</p></body></html>
"""


@dataclass
class State:
    """What the preview tells the open pages besides the published tree: a build is running, the last one failed
    (with the tail of its output) while the book ``failed_on`` was published. ``mask`` is applied to the error
    before a page shows it (a blinded preview masks the arms, as the book does)."""
    building: bool = False
    error: str | None = None
    failed_on: str = ""
    mask: Callable[[str], str] = field(default=str, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **changes) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def status(self, build_dir: Path) -> dict:
        """The published book's version, whether a build runs, and the last build's error while the book it left
        standing is still the published one (a newer book, published by a build not yet finished, has none)."""
        now = version(published(build_dir))
        with self.lock:
            return {"version": now, "building": self.building,
                    "error": self.mask(self.error) if self.error and self.failed_on == now else None}


def published(build_dir: Path) -> Path | None:
    """The published tree (the target of the ``_build`` symlink, or the folder itself), None before any book."""
    tree = Path(build_dir).resolve()
    return tree if (tree / "html" / "index.html").is_file() else None


def version(tree: Path | None) -> str:
    """The published build's name: a build publishes a new tree, so the name changes exactly when the book does."""
    return tree.name if tree is not None else ""


def inject(html: bytes, tree_version: str) -> bytes:
    """An HTML page with the reload script before its closing body tag (at the end when it has none)."""
    script = (RELOAD_SCRIPT % {"version": json.dumps(tree_version), "status": STATUS_PATH}).encode()
    at = html.lower().rfind(b"</body>")
    return html[:at] + script + html[at:] if at >= 0 else html + script


class Handler(http.server.SimpleHTTPRequestHandler):
    """Files of the tree published when the request arrived; HTML pages with the reload script; ``/__preview``."""

    def __init__(self, request, client_address, server):
        self.tree = published(server.build_dir)
        folder = (self.tree if self.tree is not None else Path(server.build_dir)) / "html"
        super().__init__(request, client_address, server, directory=str(folder))

    def do_GET(self):
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == STATUS_PATH:
            return self._send(json.dumps(self.server.state.status(self.server.build_dir)).encode(), "application/json")
        if self.tree is None:
            return self._send(inject(NO_BOOK.encode(), ""), "text/html; charset=utf-8")
        target = Path(self.translate_path(self.path))
        if target.is_dir() and path.endswith("/"):
            target = target / "index.html"
        if target.suffix == ".html" and target.is_file():
            return self._send(inject(target.read_bytes(), version(self.tree)), "text/html; charset=utf-8")
        return super().do_GET()

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args):
        """Quiet: the console is for the builds."""


def serve(build_dir: Path, state: State, port: int = DEFAULT_PORT) -> http.server.ThreadingHTTPServer:
    """Serve the published book on 127.0.0.1:``port`` (0: any free port) from a background thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.build_dir, server.state = Path(build_dir), state
    threading.Thread(target=server.serve_forever, name="preview-server", daemon=True).start()
    return server


def watched(trial_file: Path, data: str = "synthetic", mapping: str | None = None) -> list[Path]:
    """What a build reads that a person edits: the chapters, the pages, the helpers, the trial file's folder (its
    glossaries and mappings beside it), the book's configuration, and for a real export its folder and mapping."""
    found = [paths.NOTEBOOKS, paths.BOOK, paths.ROOT / "src" / "helpers", Path(trial_file).resolve().parent,
             paths.ROOT / "_toc.yml", paths.ROOT / "_config.yml"]
    if data != "synthetic":
        found.append(Path(data).resolve())
    if mapping and str(mapping).lower() != "none":
        found.append(Path(mapping).resolve())
    unique = []
    for p in found:
        if p.exists() and p not in unique:
            unique.append(p)
    return unique


def rebuild(build_args: list[str], build_dir: Path, state: State, log=print) -> subprocess.Popen:
    """Run ``python -m helpers build`` with ``build_args`` in a new process, its output passed to the console; record
    whether it failed, with the tail of its output, for the open pages. Returns the finished process."""
    state.update(building=True)
    tail = collections.deque(maxlen=ERROR_LINES)
    proc = subprocess.Popen([sys.executable, "-m", "helpers", "build", *build_args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        for line in proc.stdout:
            log(line.rstrip("\n"))
            tail.append(ANSI.sub("", line.rstrip("\n")))
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
        failed = proc.returncode != 0
        state.update(building=False, failed_on=version(published(build_dir)),
                     error=("\n".join(tail) or f"the build stopped (exit status {proc.returncode})") if failed else None)
    if proc.returncode != 0:
        log(f"[preview] the build failed (exit status {proc.returncode}); the last good book is still served")
    return proc


def blinded_mask(trial: str) -> Callable[[str], str]:
    """What a blinded preview's pages show of a build's output: the arms masked as the blinded book masks them
    (``$BLINDING_KEY``); the console keeps the build's own words."""
    from helpers.data.blinding import mask_text
    from helpers.trial import load_trial

    blinded = load_trial(trial).blinded(os.environ.get("BLINDING_KEY"))
    return lambda text: mask_text(text, blinded)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _watch(roots: list[Path], changes: queue.Queue, stop: threading.Event) -> None:
    """Put each batch of changed paths under ``roots`` on ``changes`` until ``stop`` is set."""
    import watchfiles

    for batch in watchfiles.watch(*roots, debounce=300, stop_event=stop, raise_interrupt=False):
        changes.put(sorted({p for _, p in batch}))


def run(build_args: list[str], build_dir: Path, trial_file: Path, data: str = "synthetic", mapping: str | None = None,
        port: int = DEFAULT_PORT, open_browser: bool = False, force_first: bool = False,
        mask: Callable[[str], str] = str, log=print) -> None:
    """Serve the book, build it if needed (all of it with ``force_first``), then rebuild after every change until
    Ctrl-C or SIGTERM, which also stop a running build (it removes its staging, as after Ctrl-C). ``mask``: what a
    page is shown of a failed build's output (see ``State``)."""
    state = State(mask=mask)
    try:
        server = serve(build_dir, state, port)
    except OSError as exc:
        raise PreviewError(f"cannot serve on 127.0.0.1:{port} ({exc.strerror}); pass --port with a free port") from None
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    roots = watched(trial_file, data, mapping)
    changes, stop = queue.Queue(), threading.Event()
    threading.Thread(target=_watch, args=(roots, changes, stop), name="preview-watch", daemon=True).start()
    log(f"[preview] serving {url} (Ctrl-C to stop); watching {', '.join(_shown(p) for p in roots)}")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        rebuild(build_args + (["--force"] if force_first else []), build_dir, state, log)
        while True:
            try:
                changed = changes.get(timeout=0.5)
            except queue.Empty:
                continue
            while not changes.empty():
                changed += changes.get()
            names = sorted({_shown(Path(p)) for p in changed})
            log(f"[preview] changed: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}; rebuilding")
            rebuild(build_args, build_dir, state, log)
    except KeyboardInterrupt:
        pass
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        stop.set()
        server.shutdown()
        server.server_close()
        log("[preview] stopped")


def _shown(path: Path) -> str:
    """A path as the console names it: relative to the project when inside it."""
    try:
        return str(Path(path).resolve().relative_to(paths.ROOT))
    except ValueError:
        return str(path)


class PreviewError(RuntimeError):
    """The preview cannot start; the message says why and what to do."""
