"""The book's tables as downloads: one XLSX workbook of them all, and the key tables as RTF in the layout
of a clinical study report.

Both read what the book writes for each table it shows: ``<name>.csv`` (the displayed table, first row the
header) and ``<name>.json`` (name, number, caption, notes). Both give the same bytes for the same tables.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

import polars as pl
import rtflite
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter

FIXED_TIME = dt.datetime(1980, 1, 1)
CONTENTS = "Contents"
SHEET_MAX = 31
EMPTY_ROW = "None."
FONT, FONT_SIZE = "Times New Roman", 9
PORTRAIT_WIDTH = 6.25
_CELL_PADDING = 0.2
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\']")
_INT = re.compile(r"^-?[1-9]\d{0,14}$|^0$")
_FLOAT = re.compile(r"^-?(?:0|[1-9]\d{0,14})\.\d{1,15}$")
_CONTROL_RUN = re.compile(r" *[\x00-\x1f\x7f-\x9f\u2028\u2029][ \x00-\x1f\x7f-\x9f\u2028\u2029]*")


@dataclass(frozen=True)
class SavedTable:
    """One table as the book saved it."""

    name: str
    number: str | None
    caption: str
    notes: str | None
    header: list[str]
    rows: list[list[str]]

    @property
    def title(self) -> str:
        return f"Table {self.number}. {self.caption}" if self.number else self.caption


def read_table(tables_dir: str | Path, name: str) -> SavedTable:
    """The table ``name``: its CSV as text cells (exactly as written) and its caption, number and notes."""
    folder = Path(tables_dir)
    meta = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    with open(folder / f"{name}.csv", newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    header, rows = (lines[0], lines[1:]) if lines else ([], [])
    return SavedTable(name, meta.get("number"), meta["caption"], meta.get("notes") or None, header, rows)


def number_key(number: str | None) -> tuple:
    """Sort key of a table number: "4.10" after "4.9"; tables without a number last."""
    if not number:
        return (1,)
    return (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in str(number).split(".")))


def saved_tables(tables_dir: str | Path) -> list[SavedTable]:
    """Every table in ``tables_dir`` (a CSV with its JSON sidecar), in number order, then by name."""
    names = [p.stem for p in Path(tables_dir).glob("*.json") if p.with_suffix(".csv").exists()]
    tables = [read_table(tables_dir, n) for n in names]
    return sorted(tables, key=lambda t: (number_key(t.number), t.name))


def sheet_names(tables: list[SavedTable]) -> list[str]:
    """A sheet name per table: number and name, without Excel's forbidden characters (nor quotes, which the
    contents sheet's links would need escaped), at most 31 characters, unique regardless of case (as Excel
    requires) and never the contents sheet's."""
    used, out = {CONTENTS.lower()}, []
    for t in tables:
        base = _SHEET_FORBIDDEN.sub("-", f"{t.number or ''} {t.name.removeprefix('tab-')}".strip())
        name, i = base[:SHEET_MAX], 1
        while name.lower() in used:
            i += 1
            name = f"{base[:SHEET_MAX - len(str(i)) - 1]}~{i}"
        used.add(name.lower())
        out.append(name)
    return out


def safe_cell_text(text: str) -> str:
    """``text`` on one line for RTF and XLSX: each run of control characters (line breaks, tabs, vertical tab,
    form feed, NUL, DEL, C1, U+2028/2029) with the spaces around it becomes one space, or nothing at either end.

    Why: rtflite's text measure (PIL/raqm) fails on line breaks and openpyxl refuses control characters.
    """
    return _CONTROL_RUN.sub(lambda m: "" if m.start() == 0 or m.end() == len(text) else " ", text)


def cell_value(text: str) -> tuple[int | float | str | None, str]:
    """A CSV cell for Excel and its number format: integers and plain decimals as numbers showing the
    decimals the table shows ("1.50" as 1.5 in format 0.00), empty as no value, anything else text."""
    if text == "":
        return None, "General"
    if _INT.match(text):
        return int(text), "0"
    if _FLOAT.match(text):
        return float(text), "0." + "0" * len(text.split(".")[1])
    return text, "General"


def _put(ws, row: int, col: int, value):
    if isinstance(value, str):
        value = safe_cell_text(value)
    cell = ws.cell(row=row, column=col, value=value)
    if isinstance(value, str) and value.startswith("="):
        cell.data_type = "s"
    return cell


def _contents_sheet(ws, tables: list[SavedTable], names: list[str]) -> None:
    ws.append(["Table", "Caption", "Sheet"])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row, (t, sheet) in enumerate(zip(tables, names), start=2):
        _put(ws, row, 1, t.number)
        _put(ws, row, 2, t.caption)
        _put(ws, row, 3, sheet).hyperlink = f"#'{sheet}'!A1"
    for col, width in zip("ABC", (8, 90, SHEET_MAX + 2)):
        ws.column_dimensions[col].width = width


def _table_sheet(ws, t: SavedTable) -> None:
    """Caption in row 1, bold header in row 2 over a rule, the body, then the notes (a row per line) under a
    blank row."""
    _put(ws, 1, 1, t.title).font = Font(bold=True)
    rule = Border(bottom=Side(style="thin"))
    for j, text in enumerate(t.header, start=1):
        cell = _put(ws, 2, j, text)
        cell.font, cell.border = Font(bold=True), rule
        cell.alignment = Alignment(wrap_text=True, vertical="bottom")
    for i, row in enumerate(t.rows, start=3):
        for j, text in enumerate(row, start=1):
            value, number_format = cell_value(safe_cell_text(text))
            _put(ws, i, j, value).number_format = number_format
    for k, line in enumerate((t.notes or "").splitlines()):
        _put(ws, len(t.rows) + 4 + k, 1, line)
    for j in range(1, len(t.header) + 1):
        longest = max((len(safe_cell_text(r[j - 1])) for r in [t.header, *t.rows] if len(r) >= j), default=8)
        ws.column_dimensions[get_column_letter(j)].width = min(max(longest, 8) + 2, 60)
    ws.freeze_panes = "A3"


def fixed_time_zip(raw: bytes, path: Path) -> None:
    """Copy the zip ``raw`` to ``path`` with every member stamped 1980-01-01 (openpyxl stamps the clock time)."""
    with ZipFile(io.BytesIO(raw)) as src, ZipFile(path, "w", ZIP_DEFLATED) as dst:
        for info in src.infolist():
            member = ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type, member.external_attr = ZIP_DEFLATED, 0o600 << 16
            dst.writestr(member, src.read(info))


def save_reproducibly(wb: Workbook, path: str | Path, created: dt.datetime = FIXED_TIME) -> Path:
    """Save ``wb`` so that equal content gives equal bytes: fixed created and modified properties (openpyxl's
    ``save`` sets modified to now) and fixed zip member times."""
    wb.properties.created = wb.properties.modified = created
    buffer = io.BytesIO()
    ExcelWriter(wb, ZipFile(buffer, "w", ZIP_DEFLATED)).save()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fixed_time_zip(buffer.getvalue(), path)
    return path


def write_workbook(tables_dir: str | Path, path: str | Path) -> Path:
    """All the tables in ``tables_dir`` as one XLSX workbook: a contents sheet (number, caption, sheet) and
    one sheet per table in number order."""
    tables = saved_tables(tables_dir)
    names = sheet_names(tables)
    wb = Workbook()
    wb.active.title = CONTENTS
    _contents_sheet(wb.active, tables, names)
    for t, sheet in zip(tables, names):
        _table_sheet(wb.create_sheet(sheet), t)
    return save_reproducibly(wb, path)


def rtf_text(text: str) -> str:
    """``text`` safe inside an RTF group: on one line (``safe_cell_text``), backslash and braces escaped,
    non-ASCII as \\u escapes.

    Why: rtflite passes text through unescaped (a brace would end the group early) and writes characters
    128-255 raw into a UTF-8 file that RTF readers decode as Windows-1252.
    """
    text = safe_cell_text(text).replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")
    return "".join(ch if ord(ch) < 128 else f"\\uc1\\u{ord(ch) if ord(ch) < 32768 else ord(ch) - 65536}*"
                   for ch in text)


def column_widths(t: SavedTable) -> list[float]:
    """Each column's natural width in inches: its longest header or cell at the body font, plus padding."""
    widths = []
    for j, head in enumerate(t.header):
        texts = [head, *(r[j] for r in t.rows if j < len(r))]
        widths.append(max(rtflite.get_string_width(safe_cell_text(s), FONT, FONT_SIZE) for s in texts) + _CELL_PADDING)
    return widths


def rtf_document(t: SavedTable) -> rtflite.RTFDocument:
    """``t`` as a clinical study report table: "Table <number>" and caption centred over the table, bold
    column headers, the body (first column left, the others centred), the notes as footnotes; landscape
    when the columns need more than a portrait page's width; "Page x of y" in the page header."""
    widths = column_widths(t)
    rows = t.rows or [[EMPTY_ROW] + [""] * (len(t.header) - 1)]
    body = pl.DataFrame({f"c{j}": [rtf_text(r[j]) if j < len(r) else "" for r in rows]
                         for j in range(len(t.header))})
    title = [f"Table {t.number}", t.caption] if t.number else [t.caption]
    plain = {"text_convert": False}
    return rtflite.RTFDocument(
        df=body,
        rtf_page=rtflite.RTFPage(orientation="landscape" if sum(widths) > PORTRAIT_WIDTH else "portrait"),
        rtf_page_header=rtflite.RTFPageHeader(),
        rtf_title=rtflite.RTFTitle(text=[rtf_text(s) for s in title], text_format=["b", "b"][:len(title)], **plain),
        rtf_column_header=rtflite.RTFColumnHeader(text=[rtf_text(h) for h in t.header], text_format="b",
                                                  col_rel_width=widths, **plain),
        rtf_body=rtflite.RTFBody(col_rel_width=widths, text_justification=[["l"] + ["c"] * (len(widths) - 1)],
                                 **plain),
        rtf_footnote=rtflite.RTFFootnote(text=[rtf_text(s) for s in t.notes.splitlines()], **plain)
        if t.notes else None,
    )


def write_rtf(tables_dir: str | Path, names: list[str], folder: str | Path) -> list[Path]:
    """The tables ``names`` as ``<folder>/<name>.rtf``, one clinical-study-report table per file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        path = folder / f"{name}.rtf"
        path.write_text(rtf_document(read_table(tables_dir, name)).rtf_encode(), encoding="ascii")
        written.append(path)
    return written
