"""The book as one PDF (``make pdf``) and the DSMB pair (``make dsmb``), read back with poppler's tools.

The slow tests share one unblinded book printed twice (the second time as ``make pdf`` after ``make book``: only the
single page and the print run) and one DSMB pair built on top of it (the closed report reuses that book's notebooks;
the open report is a blinded build). They need Debian's poppler-utils (pdftotext, pdfinfo, pdffonts, pdfimages) and
a Chromium; without them they skip.
"""
from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import pytest

from helpers import freshness, pdf
from helpers.report.prose import format_p

POPPLER = ("pdftotext", "pdfinfo", "pdffonts", "pdfimages")
EPOCH = "1767225600"  # 2026-01-01T00:00:00Z
A4_WIDTH_PT = 595.92
_TYPOGRAPHY = str.maketrans({"\u2212": "-", "\u2013": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
                             "\ufb01": "fi", "\ufb02": "fl"})


# --- fast: names, facts, normalization -----------------------------------------------------------------------------

class _Trial:
    def __init__(self, cutoff=None):
        self.id, self.cutoff = "NCT00000000", cutoff


def test_pdf_names_say_trial_cutoff_and_marking():
    import datetime as dt

    assert pdf.pdf_name(_Trial()) == "NCT00000000-final.pdf"
    assert pdf.pdf_name(_Trial(dt.date(2026, 3, 31))) == "NCT00000000-2026-03-31.pdf"
    assert pdf.pdf_name(_Trial(), "OPEN") == "NCT00000000-final-open.pdf"
    assert pdf.pdf_name(_Trial(dt.date(2026, 3, 31)), "CLOSED") == "NCT00000000-2026-03-31-closed.pdf"


def test_title_facts_come_from_the_provenance_record():
    record = {"parameters": {"data": "export-2026", "seed": None}, "export_sha256": "ab" * 32,
              "cutoff": "2026-03-31", "blinding": "blinded (arms masked as Arm A, Arm B)", "commit": "c0ffee",
              "dirty": True, "build_date": "2026-04-02T10:00:00Z"}
    facts = dict(pdf.title_facts(record))
    assert facts["Data"] == f"site export export-2026, SHA-256 {'ab' * 32}"
    assert facts["Data cut-off"] == "2026-03-31"
    assert facts["Blinding"] == record["blinding"]
    assert facts["Commit"] == "c0ffee (with uncommitted changes)"
    assert facts["Built"] == "2026-04-02T10:00:00Z"
    synthetic = dict(pdf.title_facts(record | {"parameters": {"data": "synthetic", "seed": 7}, "cutoff": None}))
    assert synthetic["Data"].startswith("synthetic data, simulated with seed 7")
    assert synthetic["Data cut-off"] == "none (final analysis)"


def test_normalize_sets_dates_and_numbers_nodes_keeping_the_length(tmp_path):
    def doc(now: bytes, a: bytes, b: bytes) -> bytes:
        return (b"%PDF-1.4\n1 0 obj\n<</CreationDate (D:" + now + b"+00'00')\n/ModDate (D:" + now + b"+00'00')>>\n"
                b"<</ID (node" + a + b")>> <</ID (node" + b + b")>> <</ID (node" + a + b")>>\n"
                b"trailer <</ID [<0123456789ABCDEF0123456789ABCDEF> <FEDCBA9876543210FEDCBA9876543210>]>>\n")

    one, two = tmp_path / "one.pdf", tmp_path / "two.pdf"
    one.write_bytes(doc(b"20261206190414", b"00000340", b"00000025"))
    two.write_bytes(doc(b"20270101000000", b"00000911", b"00000007"))
    for path in (one, two):
        before = path.stat().st_size
        pdf.normalize(path, "2026-01-01T00:00:00Z")
        assert path.stat().st_size == before
    assert one.read_bytes() == two.read_bytes()
    data = one.read_bytes()
    assert data.count(b"(D:20260101000000+00'00')") == 2
    assert b"(node00000000)" in data and b"(node00000001)" in data and b"0123456789ABCDEF" not in data


def test_no_chromium_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pdf.PrintError, match="no Chromium found"):
        pdf.chromium()


def test_a_pdf_needs_the_html_book(tmp_path):
    from helpers.pipeline import BuildError, build

    with pytest.raises(BuildError, match="printed from the HTML book"):
        build(build_dir=tmp_path / "_build", html=False, pdf=True, log=lambda *_: None)


# --- slow: one book printed twice, and the DSMB pair ----------------------------------------------------------------

def _need_tools():
    missing = [t for t in POPPLER if shutil.which(t) is None]
    if missing:
        pytest.skip(f"poppler-utils missing ({', '.join(missing)}): apt-get install poppler-utils")
    try:
        pdf.chromium()
    except pdf.PrintError as exc:
        pytest.skip(str(exc))
    pytest.importorskip("playwright.sync_api", exc_type=ImportError)


def _run(*cmd) -> str:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=True).stdout


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.translate(_TYPOGRAPHY)).strip()


def _pages(path: Path) -> list[str]:
    """Each page's text (pdftotext splits pages with a form feed)."""
    return [_normal(p) for p in _run("pdftotext", "-enc", "UTF-8", path, "-").split("\f")[:-1]]


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    """The DSMB folder's books: the unblinded one built with a PDF, then printed again as ``make pdf`` after
    ``make book`` would (its PDF removed from the published tree); then the DSMB pair on top."""
    _need_tools()
    mp = pytest.MonkeyPatch()
    mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
    from helpers.pipeline import build

    root = tmp_path_factory.mktemp("pdf")
    out = root / "_build-dsmb"
    closed_book = pdf.dsmb_books(out) / "closed"
    try:
        t0 = time.perf_counter()
        build(build_dir=closed_book, pdf=True, log=lambda *_: None)
        cold = time.perf_counter() - t0
        first = closed_book / freshness.read_manifest(closed_book)["pdf"]["file"]
        kept = root / "first.pdf"
        shutil.copyfile(first, kept)
        first.unlink()
        log = []
        t0 = time.perf_counter()
        build(build_dir=closed_book, pdf=True, log=log.append)
        print(f"\n[pdf] make pdf cold: {cold:.1f} s; after make book: {time.perf_counter() - t0:.1f} s")
        again = closed_book / freshness.read_manifest(closed_book)["pdf"]["file"]
        second = root / "second.pdf"
        shutil.copyfile(again, second)
        pair = pdf.dsmb(out=out, log=lambda *_: None)
    finally:
        mp.undo()
    return {"first": kept, "second": second, "log": log, "tree": closed_book.resolve(), "pair": pair, "out": out,
            "open_tree": (pdf.dsmb_books(out) / "open").resolve()}


@pytest.mark.slow
def test_make_pdf_after_make_book_only_prints(books):
    text = "\n".join(map(str, books["log"]))
    assert "every notebook is current" in text, text
    assert "[pdf] printed" in text, text


def _objects(data: bytes) -> dict[int, bytes]:
    """A PDF's objects by number, their streams inflated."""
    import zlib

    found = {}
    for m in re.finditer(rb"\n(\d+) 0 obj\n(.*?)endobj", data, re.S):
        body = m.group(2)
        stream = re.search(rb"stream\r?\n(.*)\r?\nendstream", body, re.S)
        if stream and b"/FlateDecode" in body:
            try:
                body = body[:stream.start()] + zlib.decompress(stream.group(1))
            except zlib.error:
                pass
        found[int(m.group(1))] = body
    return found


def _differences(first: bytes, second: bytes) -> list[str]:
    """Which objects differ between two PDFs, each with the start of its dictionary and its first differing bytes."""
    a, b = _objects(first), _objects(second)
    names = []
    for n in sorted(set(a) | set(b)):
        x, y = a.get(n, b""), b.get(n, b"")
        if x != y:
            at = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
            names.append(f"object {n} {x[:40]!r}: {x[max(0, at - 30):at + 30]!r} / {y[max(0, at - 30):at + 30]!r}")
    return names[:5] or ["(no object differs: the cross-reference table or trailer does)"]


@pytest.mark.slow
def test_the_pdf_is_reproducible_and_dated_by_the_build(books):
    """Two prints of one build have the same pages and text, page by page, and the build's date. Their bytes are
    usually identical; Chromium sometimes numbers its objects differently (two more font or page objects in one
    print, seen under load): then the differing objects are named in a warning, as the issue allows."""
    first, second = books["first"].read_bytes(), books["second"].read_bytes()
    assert _run("pdfinfo", books["first"]).split("Pages:")[1].split()[0] == \
        _run("pdfinfo", books["second"]).split("Pages:")[1].split()[0]
    assert _pages(books["first"]) == _pages(books["second"])
    if first != second:
        warnings.warn("two prints of the same build differ in bytes (same pages and text); differing objects: "
                      + "; ".join(_differences(first, second)))
    assert b"/CreationDate (D:20260101000000+00'00')" in first
    assert b"/ModDate (D:20260101000000+00'00')" in first


@pytest.mark.slow
def test_title_page_contents_headers_and_footers(books):
    import json

    import yaml

    pages = _pages(books["first"])
    record = json.loads((books["tree"] / "results" / "provenance.json").read_text(encoding="utf-8"))
    config = yaml.safe_load((books["tree"] / "book_config.yml").read_text(encoding="utf-8"))
    title = pages[0]
    for expected in [config["title"], f"seed {record['parameters']['seed']}", "none (final analysis)",
                     record["blinding"], record["commit"], record["build_date"]]:
        assert _normal(expected) in title, f"the title page lacks {expected!r}: {title[:600]}"
    contents = pages[1]
    assert contents.startswith(_normal(config["html"]["announcement"])) and "Contents" in contents
    for chapter in ("Summary of findings", "1. The cohort", "Provenance", "References"):
        assert chapter in contents, f"the contents list lacks {chapter!r}"
    banner = _normal(config["html"]["announcement"])
    for i, page in enumerate(pages, 1):
        assert banner in page, f"page {i} has no banner"
        assert f"Page {i} of {len(pages)}" in page, f"page {i} has no 'Page {i} of {len(pages)}'"


@pytest.mark.slow
def test_every_table_caption_and_key_result_is_printed(books):
    from html.parser import HTMLParser

    class Captions(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found, self.inside, self.text = [], False, []

        def handle_starttag(self, tag, attrs):
            if tag == "caption":
                self.inside, self.text = True, []

        def handle_endtag(self, tag):
            if tag == "caption":
                self.inside = False
                self.found.append(_normal("".join(self.text)))

        def handle_data(self, data):
            if self.inside:
                self.text.append(data)

    parser = Captions()
    for page in sorted((books["tree"] / "html").rglob("*.html")):
        parser.feed(page.read_text(encoding="utf-8"))
    captions = set(parser.found)
    assert len(captions) > 20
    text = " ".join(_pages(books["first"]))
    missing = sorted(c for c in captions if c not in text)
    assert not missing, f"table caption(s) not in the PDF: {missing[:10]}"
    tokens = set(re.findall(r"<?-?\d+(?:\.\d+)?", text))
    with (books["tree"] / "results" / "key_results.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    absent = []
    for row in rows:
        printed = re.findall(r"-?\d+(?:\.\d+)?", row["TEXT"].translate(_TYPOGRAPHY))
        printed += [format_p(float(row[c])) for c in ("PVALUE", "PHOLM") if row[c]]
        absent += [f"{n} ({row['ENDPOINT']}, {row['ANALYSIS']})" for n in printed if n not in tokens]
    assert rows and not absent, f"key result number(s) not in the PDF: {absent[:10]}"


@pytest.mark.slow
def test_pages_are_a4_and_fonts_embedded(books):
    info = _run("pdfinfo", books["first"])
    pages = int(info.split("Pages:")[1].split()[0])
    sizes = re.findall(r"Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+)", _run("pdfinfo", "-f", 1, "-l", pages, books["first"]))
    assert len(sizes) == pages
    wide = [(n, w) for n, w, _ in sizes if float(w) > A4_WIDTH_PT + 0.5]
    assert not wide, f"page(s) wider than A4: {wide[:5]}"
    fonts = _run("pdffonts", books["first"]).splitlines()[2:]
    assert fonts
    unembedded = [line for line in fonts if line.split()[-5] != "yes"]
    assert not unembedded, f"font(s) not embedded: {unembedded}"


@pytest.mark.slow
def test_internal_links_resolve(books):
    data = books["first"].read_bytes()
    used = set(re.findall(rb"/Dest /([^\s/>\]]+)", data))
    dests = re.search(rb"/Dests (\d+) 0 R", data)
    assert dests and len(used) > 20, "the PDF has no named destinations or few internal links"
    table = re.search(rb"\n" + dests.group(1) + rb" 0 obj\n(.*?)endobj", data, re.S).group(1)
    defined = set(re.findall(rb"/([^\s/\[\]<>()]+) \[\d+ 0 R /XYZ", table))
    assert used <= defined, f"links to no destination: {sorted(used - defined)[:10]}"
    assert {b"the-cohort", b"provenance"} <= used, "the contents list does not link to its chapters"


@pytest.mark.slow
def test_long_tables_repeat_their_header_row(books):
    """The laboratory values by visit (Table 4.1, several pages long): its header row, whose "Change: mean (SD)"
    no body row holds, heads every page the table runs over."""
    pages = _pages(books["first"])
    start = next(i for i, page in enumerate(pages) if "Laboratory endpoints and derived scores by visit" in page)
    headed = [i for i, page in enumerate(pages) if "Change: mean (SD)" in page]
    assert headed[0] == start and len(headed) >= 3, f"header row on pages {headed}, table from page {start}"
    assert headed == list(range(start, start + len(headed))), f"header row on pages {headed}"


# --- the DSMB pair ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_dsmb_pair_is_named_marked_and_checksummed(books):
    out = books["out"]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["NCT06984497-final-closed.pdf", "NCT06984497-final-open.pdf", pdf.CHECKSUMS]
    for line in (out / pdf.CHECKSUMS).read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    for path, marking in ((out / "NCT06984497-final-open.pdf", "OPEN REPORT"),
                          (out / "NCT06984497-final-closed.pdf", "CLOSED REPORT")):
        pages = _pages(path)
        unmarked = [i for i, p in enumerate(pages, 1) if p.count(f"{marking} · CONFIDENTIAL") < 2]
        assert not unmarked, f"{path.name}: page(s) without '{marking} · CONFIDENTIAL' above and below: {unmarked[:10]}"
    open_title, closed_title = _pages(out / "NCT06984497-final-open.pdf")[0], _pages(out / "NCT06984497-final-closed.pdf")[0]
    assert "blinded (arms masked" in open_title and "unblinded (arms named)" in closed_title
    assert "seed 20250701" in open_title and "seed 20250701" in closed_title


def _arm_mentions(texts: dict[str, str], folder: Path):
    """The project's own rule (``blinding.arm_mentions``) applied to texts taken out of a PDF."""
    from helpers.data.blinding import arm_mentions
    from helpers.trial import load_trial

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return arm_mentions(folder, load_trial("NCT06984497"))


def _raw_strings(path: Path) -> str:
    """The PDF's uncompressed objects (document information, outline, structure tree with images' alternative
    texts) as text, in both encodings PDF strings use (Latin-1, and UTF-16BE hex or bytes)."""
    data = path.read_bytes()
    hexes = [bytes.fromhex(h.decode()).decode("utf-16-be", "replace") for h in re.findall(rb"<FEFF([0-9A-Fa-f]+)>", data)]
    return data.decode("latin-1") + "\n" + "\n".join(hexes) + "\n" + data.decode("utf-16-be", "replace")


@pytest.mark.slow
def test_open_report_names_no_arm(books, tmp_path):
    """Its text, its metadata (pdfinfo, and every uncompressed string: outline, alternative texts), and the closed
    report as the control (the same check finds the arms there)."""
    out = books["out"]
    open_pdf, closed_pdf = out / "NCT06984497-final-open.pdf", out / "NCT06984497-final-closed.pdf"

    def texts(path):
        return {"text": _run("pdftotext", "-enc", "UTF-8", path, "-"), "info": _run("pdfinfo", path),
                "raw": _raw_strings(path)}

    assert _arm_mentions(texts(open_pdf), tmp_path / "open") == []
    found = _arm_mentions(texts(closed_pdf), tmp_path / "closed")
    assert found, "the check finds no arm in the closed report either: it cannot tell"


def _images(path: Path, folder: Path) -> list:
    """The images embedded in a PDF, as RGB pixel arrays (their transparency masks left out)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    listing = _run("pdfimages", "-list", path).splitlines()[2:]
    masks = {int(line.split()[1]) for line in listing if line.split()[2] == "smask"}
    _run("pdfimages", "-png", path, folder / "img")
    files = sorted(folder.glob("img-*.png"))
    return [np.asarray(Image.open(f).convert("RGB")) for i, f in enumerate(files) if i not in masks]


def _pixels(pngs) -> dict:
    import numpy as np
    from PIL import Image

    return {hashlib.sha256(np.ascontiguousarray(np.asarray(Image.open(p).convert("RGB"))).tobytes()).hexdigest(): p
            for p in pngs}


@pytest.mark.slow
def test_open_report_prints_the_blinded_builds_figures(books, tmp_path):
    """Every image of the open report is, pixel for pixel, a figure of the blinded build (whose figures' SVG twins
    the build's own blinding check read); the closed report's arm-labelled figures are not among them."""
    import numpy as np

    out = books["out"]
    blinded = _pixels(sorted((books["open_tree"] / "html" / "_images").glob("*.png")))
    unblinded = _pixels(sorted((books["tree"] / "html" / "_images").glob("*.png")))
    printed = _images(out / "NCT06984497-final-open.pdf", tmp_path / "open")
    assert printed, "the open report has no images"
    digests = [hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for a in printed]
    strangers = [i for i, d in enumerate(digests) if d not in blinded]
    assert not strangers, f"{len(strangers)} image(s) of the open report are no figure of the blinded build"
    closed = [hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
              for a in _images(out / "NCT06984497-final-closed.pdf", tmp_path / "closed")]
    assert set(closed) <= set(unblinded)
    assert set(closed) - set(blinded), "the closed report's figures equal the open's: the check cannot tell"
