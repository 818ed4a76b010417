"""The manuscript's tables as one Word file: Table 1 (baseline), the primary endpoint, the secondary endpoints at the
last visit and the adverse-event summary, as real Word tables in a journal's style (caption above, three horizontal
rules, no vertical lines, notes below, N per arm in the header), after the summary of findings as a paragraph.

Everything is read from a built tree, never recomputed: the tables' CSVs and captions (``tables/<name>.csv`` and
``.json``, as the XLSX and RTF downloads read them), the summary page's glued sentences, the banner and the build
date. The same tree gives the same bytes (fixed document properties and zip times).
"""
from __future__ import annotations

import ast
import datetime as dt
import io
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat
import pandas as pd
import yaml
from docx import Document
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt

from helpers.report.downloads import FONT, FONT_SIZE, SavedTable, column_widths, fixed_time_zip, read_table, safe_cell_text
from helpers.report.findings import PRIMARY_PREFIX
from helpers.report.prose import primary_what
from helpers.report.tables import fold_constant_columns
from helpers.trial import Trial

BASELINE, KEY_RESULTS, SECONDARY, SAFETY = "tab-baseline", "tab-key-results", "tab-holm", "tab-ae-summary"
A4 = (Mm(210), Mm(297))
MARGIN = Mm(25)
TEXT_SIZE, NOTE_SIZE, HEADER_SIZE = 10, 8, 8
RULE_THICK, RULE_THIN = 12, 6  # eighths of a point: 1.5 pt top and bottom, 0.75 pt under the header
GLUE = "application/papermill.record/text/plain"
EMU_PER_INCH = 914400
LABEL_MIN = 2 * EMU_PER_INCH  # the label column wraps down to this width before a table turns landscape


def docx_name(trial: Trial) -> str:
    return f"{trial.id}-tables.docx"


@dataclass(frozen=True)
class WordTable:
    """One table of the file: its saved table as the book shows it (constant columns said in the caption), the
    arms' N above its header when its own header does not give them, and where the book has it."""

    table: SavedTable
    arms: str | None = None

    @property
    def source(self) -> str:
        number = f"Table {self.table.number} of the book" if self.table.number else "The book"
        return f"{number} ({self.table.name}.csv in the downloads)."


def _shown(t: SavedTable, caption: str | None = None) -> SavedTable:
    """``t`` as the book shows it: columns with one value in every row leave the table for the caption."""
    df = pd.DataFrame(t.rows, columns=t.header, dtype=str) if t.rows else pd.DataFrame(columns=t.header, dtype=str)
    df, said = fold_constant_columns(df, caption or t.caption)
    return replace(t, caption=said, header=list(df.columns), rows=df.values.tolist())


def arm_headers(key: SavedTable, trial: Trial) -> list[str]:
    """The arms' column headers with their N ("Arm (N=16)"), in the book's arm order, from the key-results table."""
    return [h for a in trial.arm_order for h in key.header if h.startswith(f"{a.label} (N=")]


def _gives_n(header: list[str], trial: Trial) -> bool:
    return all(any(h.startswith(f"{a.label} (N=") for h in header) for a in trial.arm_order)


def manuscript_tables(tables_dir: Path, trial: Trial) -> list[WordTable]:
    """The four tables of a manuscript, each that the build has: Table 1, the primary endpoint (the key-results
    rows of the primary endpoint), the secondary endpoints at the last visit (the Holm table) and the adverse-event
    summary."""
    have = {p.stem for p in Path(tables_dir).glob("*.csv") if p.with_suffix(".json").exists()}
    key = read_table(tables_dir, KEY_RESULTS) if KEY_RESULTS in have else None
    arms = "; ".join(arm_headers(key, trial)) if key else None
    out = []
    for name in (BASELINE, KEY_RESULTS, SECONDARY, SAFETY):
        if name not in have:
            continue
        t = read_table(tables_dir, name)
        if name == KEY_RESULTS:
            t = replace(t, rows=[r for r in t.rows if r and r[0].startswith(PRIMARY_PREFIX)])
            t = _shown(t, f"Primary endpoint: {primary_what(trial)}")
        else:
            t = _shown(t)
        out.append(WordTable(t, None if _gives_n(t.header, trial) or not arms else arms))
    return out


def glued(notebook: Path) -> dict[str, str]:
    """The text values a notebook glued (myst-nb ``glue`` stores each one's repr), by name; other values left out."""
    out = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name and GLUE in o.get("data", {}):
                try:
                    value = ast.literal_eval(o["data"][GLUE])
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, str):
                    out[name] = value
    return out


def summary_texts(tree: Path) -> dict[str, str]:
    """The summary page's glued sentences (the trial, the verdicts), from the executed notebook that glues them."""
    for nb in sorted((Path(tree) / "generated").glob("*.ipynb")):
        values = glued(nb)
        if "verdict" in values:
            return values
    return {}


def build_time(tree: Path) -> dt.datetime:
    """The build's date (provenance.json's ``build_date``, SOURCE_DATE_EPOCH when set), else 1 January 1980."""
    record = Path(tree) / "results" / "provenance.json"
    if record.exists():
        return dt.datetime.strptime(json.loads(record.read_text(encoding="utf-8"))["build_date"], "%Y-%m-%dT%H:%M:%SZ")
    return dt.datetime(1980, 1, 1)


def banner_text(tree: Path) -> str:
    """The banner every page of the book carries (data source, cut-off, blinding), from the build's configuration."""
    config = Path(tree) / "book_config.yml"
    if not config.exists():
        return ""
    return (yaml.safe_load(config.read_text(encoding="utf-8")).get("html") or {}).get("announcement", "")


# ------------------------------------------------------------------ Word's pieces

def _border(parent, tag: str, edges: dict[str, int | None]) -> None:
    """A ``w:tblBorders``/``w:tcBorders`` with each edge a single rule of the given size, or none (``None``)."""
    borders = parent.find(qn(tag))
    if borders is None:
        borders = OxmlElement(tag)
        parent.append(borders)
    for edge, size in edges.items():
        el = OxmlElement(f"w:{edge}")
        if size is None:
            el.set(qn("w:val"), "nil")
        else:
            el.set(qn("w:val"), "single")
            el.set(qn("w:sz"), str(size))
            el.set(qn("w:space"), "0")
            el.set(qn("w:color"), "000000")
        borders.append(el)


def _row_flag(row, tag: str) -> None:
    el = OxmlElement(tag)
    el.set(qn("w:val"), "true")
    row._tr.get_or_add_trPr().append(el)


def _write(paragraph, text: str, size: float, bold: bool = False) -> None:
    run = paragraph.add_run(text)
    run.font.size, run.font.bold = Pt(size), bold or None


def _paragraph(doc, text: str = "", size: float = TEXT_SIZE, bold: bool = False, after: float = 6):
    p = doc.add_paragraph()
    p.paragraph_format.space_after = Pt(after)
    if text:
        _write(p, text, size, bold)
    return p


def _set_page(section, landscape: bool) -> None:
    width, height = A4
    section.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = (height, width) if landscape else (width, height)
    section.left_margin = section.right_margin = section.top_margin = section.bottom_margin = MARGIN


def _text_width(section) -> int:
    return section.page_width - section.left_margin - section.right_margin


def _table(doc, wt: WordTable, number: int, width: int) -> None:
    """Caption, the table (an N-per-arm line above the header when needed) with three rules, then its notes."""
    t = wt.table
    caption = _paragraph(doc, after=3)
    _write(caption, f"Table {number}. ", TEXT_SIZE, bold=True)
    _write(caption, safe_cell_text(t.caption), TEXT_SIZE)
    caption.paragraph_format.keep_with_next = True
    ncol = max(len(t.header), 1)
    head = [[wt.arms] + [""] * (ncol - 1)] if wt.arms else []
    head.append(t.header)
    body = t.rows or [["None."] + [""] * (ncol - 1)]
    table = doc.add_table(rows=len(head) + len(body), cols=ncol)
    table.autofit = False
    tbl_pr = table._tbl.tblPr
    _border(tbl_pr, "w:tblBorders", dict.fromkeys(("top", "left", "bottom", "right", "insideH", "insideV")))
    widths = fitted_widths(t, width)
    for column, w in zip(table.columns, widths):
        column.width = w
    for i, cells in enumerate(head + body):
        row = table.rows[i]
        _row_flag(row, "w:cantSplit")
        if i < len(head):
            _row_flag(row, "w:tblHeader")
        for j, cell in enumerate(row.cells):
            cell.width = widths[j]
            p = cell.paragraphs[0]
            p.paragraph_format.space_before, p.paragraph_format.space_after = Pt(1), Pt(1)
            p.paragraph_format.line_spacing = 1.0
            p.alignment = WD_ALIGN_PARAGRAPH.LEFT if j == 0 else WD_ALIGN_PARAGRAPH.CENTER
            text = cells[j] if j < len(cells) else ""
            if text:
                _write(p, safe_cell_text(text), FONT_SIZE, bold=i < len(head))
            edges = {"top": RULE_THICK if i == 0 else None,
                     "bottom": RULE_THIN if i == len(head) - 1 else RULE_THICK if i == len(head) + len(body) - 1
                     else None, "left": None, "right": None}
            _border(cell._tc.get_or_add_tcPr(), "w:tcBorders", edges)
        if wt.arms and i == 0:
            merged = row.cells[0].merge(row.cells[-1]) if ncol > 1 else row.cells[0]
            merged.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
    for line in [*(t.notes or "").splitlines(), wt.source]:
        _paragraph(doc, safe_cell_text(line), NOTE_SIZE, after=0)
    _paragraph(doc, after=6)


def _natural(t: SavedTable) -> list[int]:
    """Each column's width in EMU (Word's unit) at the tables' font: its cells on one line, its header wrapped at
    its longest word."""
    if not t.header:
        return [EMU_PER_INCH]
    words = [max(h.split() or [""], key=len) + "  " for h in t.header]  # two spaces: room for bold
    return [int(w * EMU_PER_INCH) for w in column_widths(replace(t, header=words))]


def is_wide(t: SavedTable, width: int) -> bool:
    """Whether ``t`` needs a landscape page: its columns do not fit ``width`` even with the first (the labels)
    wrapped to ``LABEL_MIN``."""
    natural = _natural(t)
    return sum(natural[1:]) + min(natural[0], LABEL_MIN) > width


def fitted_widths(t: SavedTable, width: int) -> list[int]:
    """Column widths that span ``width``: each column's natural width, the room left shared by the columns after the
    first; the first (the labels) wrapping when the others need the room, and every column narrowed in proportion
    only when that is not enough."""
    natural = _natural(t)
    if sum(natural) <= width:
        spare = (width - sum(natural)) // max(len(natural) - 1, 1)
        return natural[:1] + [w + spare for w in natural[1:]] if len(natural) > 1 else [width]
    first = max(width - sum(natural[1:]), min(natural[0], LABEL_MIN))
    widths = [first, *natural[1:]]
    scale = min(1.0, width / sum(widths))
    return [int(w * scale) for w in widths]


def docx_document(tree: Path, trial: Trial, tables: Path | None = None):
    """The Word document of a built tree (see the module's docstring), its tables read from ``tables`` (default
    ``<tree>/tables``)."""
    tree = Path(tree)
    tables = Path(tables) if tables else tree / "tables"
    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.name, normal.font.size = FONT, Pt(TEXT_SIZE)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), FONT)
    section = doc.sections[0]
    _set_page(section, landscape=False)
    banner = banner_text(tree)
    if banner:
        _write(section.header.paragraphs[0], banner, HEADER_SIZE)
    when = build_time(tree)
    props = doc.core_properties
    props.title, props.subject = f"{trial.id}: tables for the manuscript", trial.short_title
    props.author = props.last_modified_by = props.comments = ""
    props.created = props.modified = when
    props.revision = 1
    _paragraph(doc, f"{trial.id}: tables for the manuscript", 14, bold=True)
    summary = summary_texts(tree)
    if summary.get("trial_what"):
        _paragraph(doc, summary["trial_what"])
    if summary.get("verdict"):
        _paragraph(doc, "Summary of findings", 12, bold=True, after=3)
        _paragraph(doc, summary["verdict"])
    portrait = _text_width(section)
    landscape = A4[1] - 2 * MARGIN
    current = False
    for number, wt in enumerate(manuscript_tables(tables, trial), start=1):
        wide = is_wide(wt.table, portrait)
        if wide != current:
            _set_page(doc.add_section(WD_SECTION.NEW_PAGE), landscape=wide)
            current = wide
        _table(doc, wt, number, landscape if wide else portrait)
    return doc


def write_docx(tree: str | Path, trial: Trial, path: str | Path | None = None) -> Path:
    """Write the Word tables of the built ``tree`` to ``path`` (default ``<tree>/html/downloads/<id>-tables.docx``),
    atomically; equal trees give equal bytes (zip members stamped 1 January 1980). The tables are read from the
    downloads (numbered as the book numbers them) when the tree has them, else from ``<tree>/tables``."""
    tree = Path(tree)
    downloads = tree / "html" / "downloads"
    path = Path(path) if path else downloads / docx_name(trial)
    tables = downloads / "tables" if (downloads / "tables").is_dir() else tree / "tables"
    buffer = io.BytesIO()
    docx_document(tree, trial, tables).save(buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fixed_time_zip(buffer.getvalue(), partial)
    os.replace(partial, path)
    return path
