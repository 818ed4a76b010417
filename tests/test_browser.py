"""The built book read like a reader reads it: every page in headless Chromium, at a desktop and a phone width.

For each HTML page of the book (genindex and search left out) at 1280 and 390 px: no console or page errors,
nothing wider than the window outside a box that scrolls sideways (journal tables in particular), the page itself
never scrolls sideways, every internal link and anchor resolves, every image loads. A full-page screenshot of each
page and width is saved for a person to look at. The front page's key results are compared with
``results/key_results.csv``.

The book: ``BOOK_HTML=/path/to/_build/html`` tests that build (its ``results/`` folder is the sibling of ``html/``);
without it the book is built once into a temporary folder (about a minute). Screenshots go to ``BOOK_SCREENSHOTS``
(default: a temporary folder, whose path is printed). Requests to other sites are blocked (the tests run offline
and give the same answer every time); ``BOOK_ALLOW_NETWORK=1`` lets them through.

The browser is the system's Chromium (``CHROMIUM``, else ``chromium`` or ``chromium-browser`` on PATH; see
tools/install_browser.sh), driven by playwright; no browser build is ever downloaded. Without either, the module
skips.

    BOOK_HTML=_build/html .venv/bin/python -m pytest -o addopts="" -p no:cacheprovider tests/test_browser.py
"""
from __future__ import annotations

import contextlib
import csv
import functools
import http.server
import os
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest

from helpers.pdf import find_chromium

sync_api = pytest.importorskip(
    "playwright.sync_api", exc_type=ImportError,
    reason="playwright is not installed (a dependency: make .venv/.installed); browser tests skipped")


CHROMIUM = find_chromium()
if CHROMIUM is None:
    pytest.skip("no Chromium found (set CHROMIUM=/path/to/chromium, or run tools/install_browser.sh); "
                "browser tests skipped", allow_module_level=True)

WIDTHS = (1280, 390)
HEIGHT = {1280: 900, 390: 844}
SKIPPED_PAGES = {"genindex.html", "search.html"}
# Where a result's displayed text is allowed to differ from the CSV's in typography only.
_TYPOGRAPHY = str.maketrans({"\u2212": "-", "\u2013": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " "})


# --- the book, served --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Book:
    html: Path  # the HTML folder (index.html)
    results: Path  # the build's results folder (CSV files)


@pytest.fixture(scope="session")
def book(tmp_path_factory) -> Book:
    """The HTML to test: $BOOK_HTML, else the book built once into a temporary folder."""
    if os.environ.get("BOOK_HTML"):
        html = Path(os.environ["BOOK_HTML"]).absolute()
        if not (html / "index.html").is_file():
            pytest.fail(f"BOOK_HTML={html} holds no index.html; build the book first (python -m helpers build)")
        return Book(html, html.parent / "results")
    from helpers.pipeline import build

    build_dir = tmp_path_factory.mktemp("book") / "_build"
    build(build_dir=build_dir, log=lambda *_: None)
    return Book(build_dir / "html", build_dir / "results")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the browser hangs up on requests it no longer needs (preloads, a closed tab): not the book's fault


@pytest.fixture(scope="session")
def server(book) -> str:
    """The book served over HTTP on a free local port (file:// does not resolve folder links, nor localStorage)."""
    handler = functools.partial(_QuietHandler, directory=str(book.html))
    httpd = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def screenshots(request, tmp_path_factory) -> Path:
    """$BOOK_SCREENSHOTS, else a temporary folder; its path is printed either way."""
    folder = Path(os.environ.get("BOOK_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    message = f"[browser] screenshots of every page and width: {folder}"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{message}")
    return folder


@pytest.fixture(scope="session")
def browser():
    with sync_api.sync_playwright() as pw:
        args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        try:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        except sync_api.Error as exc:
            pytest.skip(f"Chromium at {CHROMIUM} does not start under playwright: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


# --- the pages, and what a reader meets on each -------------------------------------------------------------------

class _Page(HTMLParser):
    """The static facts of an HTML file: its ids (anchors), and where a meta refresh sends the reader."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refresh: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            match = re.search(r"url\s*=\s*['\"]?([^'\"]+)", a.get("content") or "", re.IGNORECASE)
            self.refresh = match.group(1).strip() if match else None


@functools.cache
def _parse(path: Path) -> _Page:
    parser = _Page()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def book_pages(html: Path) -> list[str]:
    """Every page of the book, relative to the HTML folder: no theme templates (_static), no genindex or search."""
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not any(part.startswith("_") for part in p.relative_to(html).parts)
                  and p.relative_to(html).as_posix() not in SKIPPED_PAGES)


# Run in the page: what is wider than the window, and is not inside a box that scrolls sideways within it.
_LAYOUT_JS = r"""
() => {
  const vw = document.documentElement.clientWidth;
  const inView = r => r.right <= vw + 1;
  const scrollsX = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const describe = el => {
    let s = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '');
    const classes = Array.from(el.classList).slice(0, 3);
    if (classes.length) s += '.' + classes.join('.');
    const section = el.closest('section[id]');
    return s + (section ? ` in #${section.id}` : '');
  };
  const shown = el => {
    for (let a = el; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.display === 'none' || s.visibility === 'hidden' || s.visibility === 'collapse') return false;
    }
    return true;
  };
  const offenders = [];
  const reported = new Set();
  // Inside a box that scrolls sideways and itself fits (true), or inside something already reported.
  const contained = start => {
    for (let a = start; a && a !== document.body; a = a.parentElement) {
      if (reported.has(a)) return true;
      if (scrollsX(a)) return inView(a.getBoundingClientRect());
    }
    return false;
  };
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if ((r.width === 0 && r.height === 0) || inView(r) || contained(el.parentElement) || !shown(el)) continue;
    reported.add(el);
    offenders.push(`${describe(el)} reaches ${Math.round(r.right)} px`);
  }
  // Text runs past its element's box when a word is longer than the line: look at the text itself too.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.data.trim() || !el || reported.has(el)) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    const r = range.getBoundingClientRect();
    if ((r.width === 0 && r.height === 0) || inView(r) || contained(el) || !shown(el)) continue;
    reported.add(el);
    offenders.push(`text "${n.data.trim().slice(0, 40)}" in ${describe(el)} reaches ${Math.round(r.right)} px`);
  }
  const tables = Array.from(document.querySelectorAll('table.journal')).map(t => {
    const r = t.getBoundingClientRect();
    const wrap = t.closest('div.journal-wrap');
    const caption = (t.querySelector('caption') || {}).innerText || t.closest('[id]')?.id || '?';
    return {caption: caption.replace(/\s+/g, ' ').trim().slice(0, 80), right: Math.round(r.right),
            width: Math.round(r.width), visible: inView(r), wrapped: !!wrap,
            wrapScrolls: !!wrap && scrollsX(wrap) && inView(wrap.getBoundingClientRect()),
            fits: !wrap || wrap.scrollWidth <= wrap.clientWidth + 1};
  });
  return {viewport: vw, innerWidth: window.innerWidth,
          scrollWidth: document.scrollingElement.scrollWidth,
          offenders, tables,
          links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
          images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}))};
}
"""

# Lazy images load when scrolled to: load them all, and wait for them, before looking.
_LOAD_IMAGES_JS = """
async () => {
  for (const img of document.images) img.loading = 'eager';
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done);
                            setTimeout(done, 5000); })));
}
"""


@dataclass
class Visit:
    page: str
    width: int
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    layout: dict = field(default_factory=dict)
    screenshot: Path | None = None
    redirect: str | None = None


def _same_origin(url: str, base: str) -> bool:
    return urlsplit(url)[:2] == urlsplit(base)[:2]


def _visit(browser, base: str, book: Book, page: str, width: int, shots: Path) -> Visit:
    """One page at one width, in a fresh browser context (empty storage: every page is someone's first page)."""
    visit = Visit(page, width)
    refresh = _parse(book.html / page).refresh
    if refresh is not None:  # a redirect page (index.html of a book without a front page): its target is checked
        visit.redirect = refresh
        visit.layout = {"links": [urljoin(base + page, refresh)], "images": []}
        return visit
    context = browser.new_context(viewport={"width": width, "height": HEIGHT[width]},
                                  device_scale_factor=1, is_mobile=width < 600, has_touch=width < 600)
    try:
        if not os.environ.get("BOOK_ALLOW_NETWORK"):
            def route(r):
                if _same_origin(r.request.url, base) or r.request.url.startswith(("data:", "blob:")):
                    r.continue_()
                else:
                    visit.blocked.append(r.request.url)
                    r.abort()
            context.route("**/*", route)
        tab = context.new_page()

        def on_console(msg):
            if msg.type != "error":
                return
            where = (msg.location or {}).get("url", "")
            if msg.text.startswith("Failed to load resource") and where and not _same_origin(where, base):
                return  # a blocked request to another site (listed in visit.blocked)
            visit.errors.append(f"console: {msg.text}" + (f" ({where}:{msg.location.get('lineNumber')})" if where else ""))

        tab.on("console", on_console)
        tab.on("pageerror", lambda exc: visit.errors.append(f"page error: {exc}"))
        response = tab.goto(base + page, wait_until="load")
        if response is None or response.status != 200:
            visit.errors.append(f"HTTP {response.status if response else '?'} for the page itself")
        tab.wait_for_load_state("networkidle")
        tab.evaluate(_LOAD_IMAGES_JS)
        tab.wait_for_timeout(200)  # the theme's deferred scripts (scroll spy, sidebars) settle
        visit.layout = tab.evaluate(_LAYOUT_JS)
        visit.screenshot = shots / f"{page.removesuffix('.html').replace('/', '__')}-{width}.png"
        tab.screenshot(path=str(visit.screenshot), full_page=True)
    finally:
        context.close()
    return visit


@pytest.fixture(scope="session")
def read_book(browser, server, book, screenshots):
    """Every page at one width, read once per session: ``read_book(width) -> [Visit]``."""
    cache: dict[int, list[Visit]] = {}

    def read(width: int) -> list[Visit]:
        if width not in cache:
            cache[width] = [_visit(browser, server, book, page, width, screenshots) for page in book_pages(book.html)]
        return cache[width]

    return read


def _report(problems: list[str], what: str) -> str:
    return f"{len(problems)} {what}:\n  " + "\n  ".join(problems)


# --- the checks ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_book_has_pages(book):
    pages = book_pages(book.html)
    assert "index.html" in pages
    assert len(pages) > 3, f"only {pages}"


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_no_console_errors(read_book, width):
    """A reader's console stays clean: no console.error, no uncaught exception, on any page, on first load."""
    problems = [f"{v.page}: {e}" for v in read_book(width) for e in v.errors]
    assert not problems, _report(problems, f"console/page error(s) at {width} px")


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_page_never_scrolls_sideways(read_book, width):
    """The document is no wider than the window: a reader never has to scroll the whole page sideways.

    A phone does not scroll a too-wide page, it zooms it out until it fits (window.innerWidth grows past the
    device's width, and the text shrinks): that counts as too wide as well."""
    problems = [f"{v.page}: document is {v.layout['scrollWidth']} px wide in a {width} px window"
                + (f" (the phone zooms it out to {v.layout['innerWidth']} px)" if v.layout["innerWidth"] > width + 1 else "")
                for v in read_book(width) if not v.redirect
                and v.layout["scrollWidth"] > min(v.layout["innerWidth"], width) + 1]
    assert not problems, _report(problems, f"page(s) wider than the window at {width} px")


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_nothing_wider_than_the_window(read_book, width):
    """Every element ends inside the window, or sits in a box that scrolls sideways and itself fits."""
    problems = [f"{v.page}: {o}" for v in read_book(width) if not v.redirect for o in v.layout["offenders"]]
    assert not problems, _report(problems, f"element(s) past the right edge at {width} px")


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_journal_tables_fit_or_scroll_in_their_box(read_book, width):
    """A journal table is fully visible, or inside a div.journal-wrap that scrolls sideways and fits the window."""
    problems = [f"{v.page}: '{t['caption']}' is {t['width']} px wide, ends at {t['right']} px "
                f"(viewport {v.layout['viewport']} px; " + ("wrapped, but the wrapper does not scroll within the window)"
                                                           if t["wrapped"] else "not in a div.journal-wrap)")
                for v in read_book(width) if not v.redirect for t in v.layout["tables"]
                if not (t["visible"] or t["wrapScrolls"])]
    assert not problems, _report(problems, f"journal table(s) cut off at {width} px")


@pytest.mark.slow
def test_every_journal_table_is_read_without_scrolling_at_1280(read_book):
    """On a laptop screen no table needs its scroll box: every column is in view."""
    problems = [f"{v.page}: '{t['caption']}' needs sideways scrolling ({t['width']} px wide)"
                for v in read_book(1280) if not v.redirect for t in v.layout["tables"] if not t["fits"]]
    assert not problems, _report(problems, "journal table(s) wider than the article at 1280 px")


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_images_load(read_book, width):
    problems = [f"{v.page}: {i['src']}" for v in read_book(width) for i in v.layout["images"] if not i["ok"]]
    assert not problems, _report(problems, f"image(s) not loaded at {width} px")


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return -1


@pytest.mark.slow
def test_internal_links_resolve(read_book, server, book):
    """Every link to the book itself answers 200, and its #anchor exists on the page it points to.

    Links are collected at both widths (the phone layout has its own navigation)."""
    links: dict[str, set[str]] = {}
    for width in WIDTHS:
        for v in read_book(width):
            for href in v.layout["links"]:
                if _same_origin(href, server):
                    links.setdefault(href, set()).add(v.page)
    status: dict[str, int] = {}
    problems = []
    for href, pages in sorted(links.items()):
        url, fragment = urldefrag(href)
        if url not in status:
            status[url] = _status(url)
        where = ", ".join(sorted(pages)[:3]) + (f" and {len(pages) - 3} more" if len(pages) > 3 else "")
        if status[url] != 200:
            problems.append(f"{href} -> HTTP {status[url]} (linked from {where})")
            continue
        if fragment:
            path = unquote(urlsplit(url).path).lstrip("/")
            target = book.html / path
            if target.is_dir():
                target = target / "index.html"
            if target.suffix == ".html" and unquote(fragment) not in _parse(target).ids:
                problems.append(f"{href} -> no element with id '{unquote(fragment)}' on {path} (linked from {where})")
    assert not problems, _report(problems, "broken internal link(s)")


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_screenshots_saved(read_book, width):
    missing = [v.page for v in read_book(width) if not v.redirect and not (v.screenshot and v.screenshot.stat().st_size)]
    assert not missing, f"no screenshot for {missing}"


# --- the front page against the results ----------------------------------------------------------------------------
#
# The contract: index.html (the summary of findings) holds a <table id="key-results"> (or a table inside the
# element with that id: the summary's "Key results" section), and the build writes
# results/key_results.csv with one row per result shown there and a column TEXT with the text as displayed.

def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).translate(_TYPOGRAPHY)).strip()


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@pytest.fixture(scope="session")
def key_results(book) -> list[dict[str, str]]:
    path = book.results / "key_results.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent: this build has no key results to check the front page against")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, f"{path} has no rows"
    assert "TEXT" in rows[0], f"{path} has no TEXT column (columns: {list(rows[0])})"
    return rows


@pytest.fixture(scope="session")
def front_page(browser, server, key_results):
    """The cells of the front page's key-results table as the browser renders them (None: no such table).

    The table is ``table#key-results``, or the first table inside the element with id ``key-results`` (the
    "Key results" section of the summary)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = context.new_page()
        tab.goto(server + "index.html", wait_until="load")
        tab.wait_for_load_state("networkidle")
        table = tab.query_selector("table#key-results") or tab.query_selector("#key-results table")
        found = None if table is None else {
            "numbers": [c.inner_text() for c in (table.query_selector_all("tbody td.r")
                                                 or table.query_selector_all("tbody td"))],
            "cells": [c.inner_text() for c in table.query_selector_all("td, th")]}
        return {"url": tab.url, "table": found, "text": tab.inner_text("body")}
    finally:
        context.close()


def _key_table(front_page) -> dict:
    assert front_page["table"] is not None, (
        f"the front page ({front_page['url']}) has no table#key-results (nor a table inside #key-results)")
    return front_page["table"]


@pytest.mark.slow
def test_front_page_shows_every_key_result(front_page, key_results):
    """Each key result's displayed TEXT is what the front page's key-results table shows."""
    cells = [_normal(c) for c in _key_table(front_page)["cells"]]
    assert any(_NUMBER.search(c) for c in cells), "table#key-results shows no numbers"
    missing = [row["TEXT"] for row in key_results
               if _normal(row["TEXT"]) and not any(_normal(row["TEXT"]) in c for c in cells)]
    missing_from_page = [t for t in missing if _normal(t) not in _normal(front_page["text"])]
    assert not missing, (_report([f"{t!r}" + (" (nowhere on the page)" if t in missing_from_page else
                                              " (elsewhere on the page, not in the table)") for t in missing],
                                 "key result(s) of key_results.csv not shown in table#key-results"))


def _shown_as(shown: str, value: float) -> bool:
    """Does the displayed number ``shown`` print ``value`` (a proportion may show as a percentage)?"""
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    return any(abs(float(shown) - v) <= tolerance for v in (value, 100 * value))


@pytest.mark.slow
def test_front_page_numbers_come_from_key_results(front_page, key_results):
    """Every number in the key-results table's result cells (right-aligned: estimates, CIs, P) is a value of
    key_results.csv as printed (rounded to the decimals shown; a proportion as a percentage): nothing typed or stale."""
    values = []
    for row in key_results:
        for value in row.values():
            try:
                values.append(float(value))
            except (TypeError, ValueError):
                values.extend(float(n) for n in _NUMBER.findall(_normal(value or "")))
    problems = [f"{n!r} in cell {_normal(cell)!r}" for cell in _key_table(front_page)["numbers"]
                for n in _NUMBER.findall(_normal(cell)) if not any(_shown_as(n, v) for v in values)]
    assert not problems, _report(problems, "number(s) in table#key-results that are no value of key_results.csv")
