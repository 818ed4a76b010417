"""What a build depends on, as content hashes: a notebook re-runs only when one of its inputs changed, and a build
whose every input is unchanged does nothing. Standard library only, so the check is quick.

Whether the published build is current is decided under the checkout's build lock (``build_lock``): a build
running now may publish other inputs, so while another build holds the lock nothing is "current".

A notebook's inputs: its own source (cells, not outputs), the helpers package, the trial file, the export's
files (their SHA-256), the build's parameters and the blinding key. The whole build's: every notebook's source,
the book's pages and configuration, and the same.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

from helpers import paths

MANIFEST = "manifest.json"
BOOK_FILES = ("_toc.yml", "_config.yml")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_hash(folder: Path, suffixes: tuple[str, ...]) -> str:
    """One hash of every file under ``folder`` with one of ``suffixes`` (names and contents)."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in suffixes
                       and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def helpers_hash() -> str:
    """The helpers package's code and data files."""
    return tree_hash(Path(__file__).parent, (".py", ".yaml", ".css"))


def notebook_source_hash(path: Path) -> str:
    """A notebook's cells (source, type and metadata), not its stored outputs or execution counts."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = [{"type": c["cell_type"], "source": "".join(c["source"]), "metadata": c.get("metadata", {})}
             for c in nb["cells"]]
    return _sha(json.dumps(cells, sort_keys=True).encode())


def mapping_file(data: str, trial_file: Path, mapping: str | None = None) -> Path | None:
    """The export mapping a build reads its export through (``paths.mapping_file``; none for the synthetic export),
    found without loading the whole trial file."""
    if data == "synthetic":
        return None
    import yaml

    named = None if mapping else (yaml.safe_load(Path(trial_file).read_text(encoding="utf-8")) or {}).get("export_mapping")
    return paths.mapping_file(trial_file, named, mapping)


def data_inputs(data: str, trial_file: Path, mapping: str | None = None) -> dict[str, str]:
    """The trial file's hash and, for a real export, its files' hashes and the export mapping's (a synthetic export
    follows from the trial file, the seed and the helpers)."""
    inputs = {"trial file": _sha(Path(trial_file).read_bytes()),
              "glossaries beside it": tree_hash(Path(trial_file).parent, (".md",))}
    if data != "synthetic":
        inputs.update(export_files(Path(data)))
        used = mapping_file(data, trial_file, mapping)
        if used is not None:
            inputs["export mapping"] = _sha(used.read_bytes()) if used.is_file() else "missing"
    return inputs


def export_files(folder: Path) -> dict[str, str]:
    """Every file of an export folder (hidden files aside) by name, with its SHA-256: what the site sent."""
    return {p.name: _sha(p.read_bytes()) for p in sorted(Path(folder).iterdir())
            if p.is_file() and not p.name.startswith(".")}


def common_key(data: str, trial_file: Path, params: dict) -> dict:
    """What every notebook depends on besides its own source."""
    key = os.environ.get("BLINDING_KEY")
    return {"helpers": helpers_hash(), "inputs": data_inputs(data, trial_file, params.get("mapping")),
            "params": {k: params.get(k) for k in ("data", "seed", "cutoff", "blinded")},
            "blinding key": _sha(key.encode()) if key else None}


def notebook_key(notebook: Path, common: dict) -> str:
    """The content hash that decides whether ``notebook`` must run again."""
    return _sha(json.dumps({"notebook": notebook_source_hash(notebook)} | common, sort_keys=True).encode())


def build_key(notebooks: list[Path], common: dict, html: bool) -> str:
    """The content hash of a whole build: notebooks, book pages and configuration, data, parameters."""
    book = {"pages": tree_hash(paths.BOOK, (".md", ".bib", ".css")) if paths.BOOK.exists() else None,
            "files": {f: _sha((paths.ROOT / f).read_bytes()) for f in BOOK_FILES if (paths.ROOT / f).exists()}}
    return _sha(json.dumps({"notebooks": {nb.name: notebook_key(nb, common) for nb in notebooks}, "book": book,
                            "html": html} | common, sort_keys=True).encode())


def read_manifest(tree: Path) -> dict:
    """The manifest of a published build (empty when there is none)."""
    path = Path(tree) / "generated" / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def stale(notebooks: list[Path], common: dict, manifest: dict, tree: Path) -> list[Path]:
    """The notebooks that must run: their key differs from the published build's, or an output it recorded is
    missing from the published tree."""
    done = manifest.get("notebooks", {})

    def current(nb: Path) -> bool:
        entry = done.get(nb.name)
        return (entry is not None and entry["key"] == notebook_key(nb, common)
                and all((Path(tree) / f).exists() for f in entry["files"] + [f"generated/{nb.name}"]))

    return [nb for nb in notebooks if not current(nb)]


def is_current(build_dir: Path, data: str, trial_file: Path, seed, cutoff, blinded: bool, html: bool,
               notebook_dir: Path = paths.NOTEBOOKS, mapping: str | None = None, pdf: bool = False,
               marking: str | None = None) -> bool:
    """The published build was made from exactly these inputs: building again would change nothing. With ``pdf``,
    it also holds the PDF with that ``marking`` (a build with a PDF is current for one asked without)."""
    published = Path(build_dir)
    manifest = read_manifest(published)
    if not manifest.get("build") or (html and not (published / "html" / "index.html").exists()):
        return False
    printed = manifest.get("pdf") or {}
    if pdf and (printed.get("marking") != marking or not (published / printed.get("file", "")).is_file()):
        return False
    data = data if data == "synthetic" else str(Path(data).resolve())
    params = {"data": data, "seed": seed, "cutoff": str(cutoff) if cutoff else None, "blinded": blinded,
              "mapping": mapping}
    chapters = sorted(Path(notebook_dir).glob("[0-9][0-9]_*.ipynb"))
    return manifest["build"] == build_key(chapters, common_key(data, Path(trial_file), params), html)


@contextlib.contextmanager
def build_lock(build_dir: Path, log=print, wait: bool = True):
    """Hold the checkout's build lock; a second build waits for the first (its pid is shown) instead of interleaving.
    Yields whether the lock is held: with ``wait=False`` it yields False at once when another build holds it."""
    lock_path = Path(build_dir).with_name(f".{Path(build_dir).name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            fh.seek(0)
            log(f"[lock] another build is running ({fh.read().strip() or 'pid unknown'}); waiting for it to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_current_now(build_dir: Path, data: str, trial_file: Path, seed, cutoff, blinded: bool, html: bool,
                   mapping: str | None = None, pdf: bool = False) -> bool:
    """``is_current``, decided under the build lock; False at once while another build holds it (that build may
    publish other inputs, so the caller must build, and wait its turn)."""
    with build_lock(build_dir, wait=False) as held:
        return held and is_current(build_dir, data, trial_file, seed, cutoff, blinded, html, mapping=mapping, pdf=pdf)
