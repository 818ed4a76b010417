"""The book as one PDF, printed offline by the system's Chromium (through playwright) from a single-page build.

jupyter-book's ``singlehtml`` builder renders the build's staged sources (the same the HTML book is made from) as one
page; a print stylesheet and a few DOM edits (a title page from the build's provenance record and banner, a
contents list, links made internal, wide tables scaled to the page) prepare it, and Chromium prints it on A4 with
the banner and "page x of y" on every page. The PDF is a build output: it is printed into the build's staging tree
and published with it (``pipeline.build(..., pdf=True)``), so a failed print leaves the last good book.

Chromium stamps each PDF with the time and a random document ID; both are set from the build (its provenance
date, a hash of the content), so that equal builds give equal files.

The DSMB pair (``dsmb``): the open report (blinded build) and the closed report (unblinded build) of the same export
and cut-off, each marked on every page, published together with their SHA-256 checksums.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import yaml

from helpers import freshness, paths
from helpers.bundle import dsmb_dir, pdf_name  # noqa: F401 - pdf_name: the PDF's name, here with the printing
from helpers.trial import Trial

DOWNLOADS = Path("html") / "downloads"
PRINT_CSS = Path(__file__).parent / "report" / "static" / "print.css"
SINGLE = "single"  # the singlehtml output folder in jupyter-book's work folder
PRINT_PAGE = "print.html"
MARKINGS = {"OPEN": "OPEN REPORT", "CLOSED": "CLOSED REPORT"}
CHECKSUMS = "SHA256SUMS"
MARGIN_MM = {"top": 16, "bottom": 16, "left": 14, "right": 14}
COLUMN_PX = int((210 - MARGIN_MM["left"] - MARGIN_MM["right"]) / 25.4 * 96)  # A4's text column, in CSS pixels


class PrintError(RuntimeError):
    """The PDF could not be made (no Chromium, no playwright, a failed single-page build)."""


def find_chromium() -> str | None:
    """The system's Chromium: $CHROMIUM, else chromium or chromium-browser on PATH (never a downloaded build)."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium() -> str:
    """``find_chromium``, or an error saying how to install it."""
    found = find_chromium()
    if not found:
        raise PrintError("no Chromium found to print the PDF: install Debian's (sh tools/install_browser.sh, or "
                         "apt-get install chromium) or set CHROMIUM=/path/to/chromium")
    return found


# --- the single-page build ---------------------------------------------------------------------------------------

def single_page(work: Path, log) -> Path:
    """Build ``work/src`` (the sources the HTML build has just synced) with jupyter-book's singlehtml builder into
    ``work/single``, incrementally; returns the page to print, a copy of the root document at the output's top
    (Sphinx writes the root document in its own sub-folder but its links relative to the top)."""
    out = work / SINGLE
    dirty = out / "INCOMPLETE"
    if dirty.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    dirty.touch()
    t0 = time.perf_counter()
    cmd = paths.jupyter_book("build", str(work / "src"), "--builder", "singlehtml", "--path-output", str(out),
                             "--warningiserror", "--keep-going", "--quiet")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    root = _root_doc(work / "src" / "_toc.yml")
    page = out / "_build" / "singlehtml" / f"{root}.html"
    if proc.returncode != 0 or not page.exists():
        shutil.rmtree(out, ignore_errors=True)
        raise PrintError("jupyter-book singlehtml build failed; the last good book is kept.\n"
                         + proc.stdout[-4000:] + proc.stderr[-4000:])
    dirty.unlink()
    printed = page.parents[len(Path(root).parts) - 1] / PRINT_PAGE
    printed.write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    log(f"[pdf] single page built in {time.perf_counter() - t0:.1f} s")
    return printed


def _root_doc(toc: Path) -> str:
    return yaml.safe_load(toc.read_text(encoding="utf-8"))["root"]


def contents(toc: Path) -> list[dict]:
    """The book's chapters for the contents list, in order: the document's name and its part's caption."""
    config = yaml.safe_load(toc.read_text(encoding="utf-8"))
    chapters = [{"doc": config["root"], "part": ""}]
    for part in config.get("parts", []):
        chapters += [{"doc": c["file"], "part": part.get("caption", "")} for c in part.get("chapters", [])]
    return chapters


# --- printing ----------------------------------------------------------------------------------------------------

def title_facts(record: dict) -> list[tuple[str, str]]:
    """The title page's facts, as the build's provenance record states them."""
    params = record["parameters"]
    if params.get("data") == "synthetic":
        data = f"synthetic data, simulated with seed {params.get('seed')}: not results of the trial"
    else:
        data = f"site export {params.get('data')}, SHA-256 {record['export_sha256']}"
    dirty = " (with uncommitted changes)" if record.get("dirty") else ""
    return [("Data", data),
            ("Data cut-off", record["cutoff"] or "none (final analysis)"),
            ("Blinding", record["blinding"]),
            ("Commit", f"{record['commit']}{dirty}"),
            ("Built", record["build_date"])]


def _templates(banner: str, title: str, marking: str | None) -> tuple[str, str]:
    """Chromium's header and footer: the banner (and the DSMB marking) above, the book and "page x of y" below."""
    style = "font-family: sans-serif; font-size: 7.5px; color: #333; width: 100%; margin: 0 12mm; display: flex; " \
            "justify-content: space-between; gap: 4mm;"
    mark = (f'<span style="font-weight: bold; color: #a00; white-space: nowrap;">{html.escape(MARKINGS[marking])} · '
            "CONFIDENTIAL</span>") if marking else ""
    header = f'<div style="{style}"><span>{html.escape(banner)}</span>{mark}</div>'
    footer = (f'<div style="{style}"><span>{html.escape(title)}</span>{mark}<span style="white-space: nowrap;">Page '
              '<span class="pageNumber"></span> of <span class="totalPages"></span></span></div>')
    return header, footer


PREPARE_JS = r"""
([facts, chapters, root, title, banner, marking]) => {
  const el = (tag, attrs = {}, text = null) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== null) e.textContent = text;
    return e;
  };
  const article = document.querySelector("article.bd-article") || document.body;
  // Links: the root document's own links become anchors of this page; links out of the book stay links only when
  // they are web addresses (a download's relative path means nothing in a PDF).
  for (const a of document.querySelectorAll("a[href]")) {
    const href = a.getAttribute("href");
    const [path, frag] = href.split("#");
    if (path === "" || path === root + ".html" || path.endsWith("/" + root.split("/").pop() + ".html")) {
      a.setAttribute("href", "#" + (frag || ""));
    } else if (!/^(https?|mailto):/.test(href)) {
      a.removeAttribute("href");
    }
  }
  for (const d of document.querySelectorAll("details")) d.open = true;
  for (const img of document.querySelectorAll("img")) img.loading = "eager";
  // The title page and the contents list.
  const front = el("section", {class: "print-front"});
  const tp = el("div", {class: "print-title"});
  if (marking) tp.append(el("p", {class: "print-marking"}, marking));
  tp.append(el("h1", {}, title));
  tp.append(el("p", {class: "print-banner"}, banner));
  const dl = el("dl", {class: "print-facts"});
  for (const [k, v] of facts) { dl.append(el("dt", {}, k)); dl.append(el("dd", {}, v)); }
  tp.append(dl);
  front.append(tp);
  const toc = el("nav", {class: "print-contents"});
  toc.append(el("h2", {}, "Contents"));
  let part = null, list = null;
  for (const c of chapters) {
    const anchor = document.getElementById("document-" + c.doc);
    const section = c.doc === root ? article.querySelector("section") : anchor && anchor.nextElementSibling;
    const heading = section && section.querySelector("h1, h2");
    if (!heading || !section.id) continue;
    if (c.part !== part || list === null) {
      part = c.part;
      if (part) toc.append(el("p", {class: "print-part"}, part));
      list = el("ol");
      toc.append(list);
    }
    const li = el("li");
    const text = heading.cloneNode(true);
    text.querySelectorAll(".headerlink").forEach(h => h.remove());
    li.append(el("a", {href: "#" + section.id}, text.textContent.trim()));
    list.append(li);
    if (c.doc !== root) section.classList.add("print-chapter");
  }
  front.append(toc);
  article.prepend(front);
  document.title = title;
}
"""

SETTLE_JS = r"""
async () => {
  // Lay the page out, then wait for the fonts that layout asked for and a frame, until nothing more is loading:
  // a print taken earlier may differ from the next one by a glyph.
  for (let i = 0; i < 3; i++) {
    document.body.getBoundingClientRect();
    await document.fonts.ready;
    await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
    await new Promise(resolve => requestAnimationFrame(() => resolve()));
  }
}
"""

FIT_JS = r"""
() => {
  // A table or block wider than the text column is scaled down to it (it cannot scroll on paper).
  for (const box of document.querySelectorAll("div.journal-wrap, div.pst-scrollable-table-container, div.highlight pre, div.output pre")) {
    const need = box.scrollWidth, have = box.clientWidth;
    if (need > have + 1) box.style.zoom = (have / need).toFixed(4);
  }
}
"""


PRINT_TIMEOUT_MS = 600_000  # a 100-page book on a loaded 2-core machine takes minutes, not playwright's 30 s


def in_own_thread(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a thread of its own: playwright's sync API refuses a thread where an asyncio loop
    runs (a notebook's kernel, or a process that ran papermill or a Jupyter client)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        return worker.submit(fn, *args, **kwargs).result()


def print_pdf(*args, **kwargs) -> Path:
    """Print the book (``_print_pdf``) outside any asyncio loop."""
    return in_own_thread(_print_pdf, *args, **kwargs)


def _print_pdf(page: Path, target: Path, facts: list[tuple[str, str]], banner: str, title: str,
               marking: str | None = None, toc: Path = paths.ROOT / "_toc.yml") -> Path:
    """Print ``page`` (a single-page build) to ``target`` with Chromium, offline: requests for anything but local
    files are refused."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise PrintError("playwright is not installed in this environment (pip install playwright); it drives "
                         "the system's Chromium to print the PDF") from None
    executable = chromium()
    header, footer = _templates(banner, title, marking)
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    root = _root_doc(toc)
    shown = MARKINGS[marking] + " · CONFIDENTIAL" if marking else None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, headless=True, args=args)
            try:
                tab = browser.new_page(viewport={"width": COLUMN_PX, "height": 1000})
                tab.set_default_timeout(PRINT_TIMEOUT_MS)
                tab.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                          else route.abort())
                tab.goto(page.resolve().as_uri(), wait_until="networkidle")
                tab.emulate_media(media="print")
                tab.add_style_tag(content=PRINT_CSS.read_text(encoding="utf-8"))
                tab.evaluate(PREPARE_JS, [facts, contents(toc), root, title, banner, shown])
                tab.evaluate(SETTLE_JS)
                tab.evaluate(FIT_JS)
                tab.evaluate(SETTLE_JS)
                tab.pdf(path=str(target), format="A4", print_background=True, display_header_footer=True,
                        header_template=header, footer_template=footer, outline=True, tagged=True,
                        margin={side: f"{mm}mm" for side, mm in MARGIN_MM.items()})
            finally:
                browser.close()
    except Error as exc:
        raise PrintError(f"Chromium ({executable}) could not print the PDF: {str(exc).splitlines()[0]}") from None
    return target


_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:\d{14}")
_ID = re.compile(rb"/ID \[<([0-9A-Fa-f]+)> <([0-9A-Fa-f]+)>\]")
_NODE = re.compile(rb"\(node(\d{8})\)")


def normalize(path: Path, when: str) -> None:
    """Set the dates Chromium stamps (now) to ``when`` (the build date, ISO 8601 UTC), number the structure elements
    of the tagged PDF (Chromium's DOM node ids, which vary between runs) in order of appearance, and set a document
    ID, should it write one, to a hash of the content: in place, byte for byte the same length (the offsets stay
    valid)."""
    data = Path(path).read_bytes()
    nodes: dict[bytes, bytes] = {}
    data = _NODE.sub(lambda m: b"(node" + nodes.setdefault(m.group(1), b"%08d" % len(nodes)) + b")", data)
    stamp = dt.datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").strftime("%Y%m%d%H%M%S").encode()
    data = _DATE.sub(lambda m: b"/" + m.group(1) + b" (D:" + stamp, data)
    digest = hashlib.sha256(_ID.sub(b"/ID []", data)).hexdigest().upper().encode()
    out = _ID.sub(lambda m: b"/ID [<" + digest[:len(m.group(1))] + b"> <" + digest[:len(m.group(2))] + b">]", data)
    Path(path).write_bytes(out)


def write_pdf(tree: Path, work: Path, trial: Trial, log, marking: str | None = None) -> Path:
    """The book of ``tree`` as one PDF in ``tree/html/downloads``, printed from a single-page build of the sources in
    ``work`` (jupyter-book's work folder, just synced by the HTML build); records it in the build's manifest."""
    from helpers.data.blinding import arm_mentions

    single = single_page(work, log)
    if trial.is_blinded:
        hits = arm_mentions(single.parent, trial.masked_from)
        if hits:
            raise PrintError(f"blinded build: the single page names an arm ({hits[0][0].name}: {hits[0][1]!r}); "
                             "nothing was printed")
    record = json.loads((tree / "results" / "provenance.json").read_text(encoding="utf-8"))
    config = yaml.safe_load((tree / "book_config.yml").read_text(encoding="utf-8"))
    target = tree / DOWNLOADS / pdf_name(trial, marking)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print_pdf(single, target, title_facts(record), config["html"]["announcement"], config["title"], marking,
              work / "src" / "_toc.yml")
    normalize(target, record["build_date"])
    manifest_file = tree / "generated" / freshness.MANIFEST
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["pdf"] = {"file": str(target.relative_to(tree)), "marking": marking}
    manifest_file.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    log(f"[pdf] printed {target.name} in {time.perf_counter() - t0:.1f} s")
    return target


# --- the DSMB pair -----------------------------------------------------------------------------------------------

DSMB = dsmb_dir(paths.BUILD)


def dsmb_books(out: Path) -> Path:
    """Where the two books behind the DSMB pair are built and kept (so that the next pair rebuilds only what changed)."""
    return out.with_name(out.name + "-books")


def dsmb(data: str = "synthetic", trial: str = paths.DEFAULT_TRIAL, seed: int | None = None, cutoff: str | None = None,
         mapping: str | None = None, jobs: int | None = None, force: bool = False, out: Path = DSMB,
         log=print) -> list[Path]:
    """The open report (blinded build) and the closed report (unblinded build) of one export and cut-off, published
    together in ``out`` with a SHA-256 checksum file; returns their paths."""
    from helpers.pipeline import BuildError, build, publish, trees_dir

    out = Path(out)
    if not os.environ.get("BLINDING_KEY"):
        log("[dsmb] note: BLINDING_KEY is not set, so the open report's arm letters follow the trial file's "
            "randomization seed; set it (and keep it with the unblinded statistician) for a real committee")
    books, reports = dsmb_books(out), []
    for marking, blinded in (("OPEN", True), ("CLOSED", False)):
        log(f"[dsmb] {marking.lower()} report ({'blinded' if blinded else 'unblinded'} build)")
        index = build(data, trial, seed, cutoff, build_dir=books / marking.lower(), log=log, blinded=blinded,
                      jobs=jobs, force=force, mapping=mapping, pdf=True, marking=marking)
        published = index.parents[1]
        reports.append(published / freshness.read_manifest(published)["pdf"]["file"])
    records = [json.loads((r.parents[2] / "results" / "provenance.json").read_text(encoding="utf-8")) for r in reports]
    if len({(r["export_sha256"], r["cutoff"]) for r in records}) != 1:
        raise BuildError("the open and closed reports were built from different exports or cut-offs; nothing was published")
    with freshness.build_lock(out, log):
        trees = trees_dir(out)
        trees.mkdir(parents=True, exist_ok=True)
        stage = trees / f"staging-{uuid.uuid4().hex[:12]}"
        try:
            stage.mkdir()
            for report in reports:
                shutil.copyfile(report, stage / report.name)
            (stage / CHECKSUMS).write_text("".join(f"{freshness._sha((stage / r.name).read_bytes())}  {r.name}\n"
                                                   for r in reports), encoding="utf-8")
            publish(stage, out)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return [out / r.name for r in reports]
