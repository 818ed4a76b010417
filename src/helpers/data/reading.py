"""Read one file of a site export as a table of text cells: CSV, XLSX, SAS (.sas7bdat, .xpt) or SPSS (.sav).

Nothing is converted: every cell is text, an empty cell the empty string, so that the contract's checks see what
the site wrote. Rows are numbered as a spreadsheet shows them (the header is row 1; in SAS and SPSS files too,
record n is row n + 1), and the index is that number minus 2. A file that cannot be read raises ReadError naming
the file, the row and the rule.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None
    column: str | None
    rule: str
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message} [rule: {self.rule}]"



class ReadError(ValueError):
    """A file that cannot be read as a table; carries the problem (file, row, rule) to report."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data[:exc.start].count(b"\n") + 1
        hint = ""
        try:
            data.decode("gb18030")
            hint = "; it reads as GBK/GB18030 (Chinese Windows): save it as UTF-8"
        except UnicodeDecodeError:
            pass
        raise ReadError(Problem(path.name, row, None, "encoding",
                                f"byte 0x{data[exc.start]:02X} is not UTF-8{hint}")) from None


def _repeated_header(fname: str, header: list[str], row: list[str], number: int) -> Problem | None:
    """A data row naming every column of the header: two exports concatenated. The same columns in the
    same order: the row is to be left out (the returned error); otherwise ReadError (rows below are shifted)."""
    names = [h.strip().casefold() for h in header]
    cells = [c.strip().casefold() for c in row]
    if sum(bool(n) for n in names) < 2 or not {n for n in names if n} <= set(cells):
        return None
    if cells[:len(names)] == names and not any(cells[len(names):]):
        return Problem(fname, number, None, "repeated_header",
                       f"row {number} repeats the header: two exports concatenated? The row is left out; "
                       "check the rows below it for records exported twice")
    raise ReadError(Problem(fname, number, None, "repeated_header",
                            f"row {number} is a second header with other columns or another column order: two "
                            "exports concatenated? The rows below it cannot be read; export the table once"))


def _read_csv(path: Path, warnings: list[Problem], errors: list[Problem]) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(_decode(path), newline=""))
    records = [(reader.line_num, row) for row in reader if "".join(row).strip()]
    if not records:
        return pd.DataFrame()
    header = records[0][1]
    if len(header) == 1 and header[0].count(";") >= 2:
        raise ReadError(Problem(path.name, 1, None, "delimiter",
                                "looks like a semicolon-delimited file: save it with commas (CSV UTF-8)"))
    while header and header[-1].strip() == "":
        header = header[:-1]
    rows, index, trailing = [], [], False
    probe = max((h.strip().casefold() for h in header), key=len, default="")  # in every repeated header
    for line, row in records[1:]:
        repeated = probe in "\x00".join(row).casefold() and _repeated_header(path.name, header, row, line)
        if repeated:
            errors.append(repeated)
            continue
        extra = row[len(header):]
        if any(cell.strip() for cell in extra):
            raise ReadError(Problem(path.name, line, None, "fields",
                                    f"{len(row)} fields where the header has {len(header)}: an unquoted comma "
                                    "(a decimal comma, or a comma inside a text)?"))
        trailing |= bool(extra)
        rows.append(row[:len(header)] + [""] * (len(header) - len(row)))
        index.append(line - 2)
    if trailing:
        warnings.append(Problem(path.name, None, None, "trailing_delimiter",
                                "rows end with an extra delimiter: the empty last field was ignored"))
    return pd.DataFrame(rows, columns=[str(c) for c in header], index=index)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d") if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_xlsx(path: Path, warnings: list[Problem], errors: list[Problem], sheet: str | None = None) -> pd.DataFrame:
    """Every visible sheet that holds data, with the same header, read as one table (rows numbered as in the
    first sheet, the next sheets' rows below them as if stacked); hidden sheets are left out, with a warning.
    With ``sheet``, that sheet alone (rows numbered as in it), hidden or not; the others are not read."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    sheets, last = [], 0
    worksheets = book.worksheets
    if sheet is not None:
        worksheets = [ws for ws in book.worksheets if ws.title == sheet]
        if not worksheets:
            titles = ", ".join(repr(ws.title) for ws in book.worksheets)
            book.close()
            raise ReadError(Problem(path.name, None, None, "sheet_not_found",
                                    f"the workbook has no sheet {sheet!r} (its sheets: {titles})"))
    for ws in worksheets:
        if sheet is None and ws.sheet_state != "visible":
            state = "very hidden" if ws.sheet_state == "veryHidden" else "hidden"
            warnings.append(Problem(path.name, None, None, "hidden_sheet",
                                    f"sheet {ws.title!r} is {state}: left out (unhide it if it holds the data)"))
            continue
        rows = [(n, [_cell_text(v) for v in r]) for n, r in enumerate(ws.iter_rows(values_only=True), start=1)]
        rows = [(n, r) for n, r in rows if any(c.strip() for c in r)]
        if not rows:
            continue
        first, header = rows[0]
        filled = [c for c in header if c.strip()]
        if len(filled) == 1 and len(rows) > 1 and sum(bool(c.strip()) for c in rows[1][1]) > 1:
            raise ReadError(Problem(f"{path.name} (sheet {ws.title})", first, None, "header",
                                    f"the first row holds only {filled[0]!r}: a title row? The header must be the first row"))
        while header and not header[-1].strip():
            header = header[:-1]
        base = last - first if sheets else 0
        data = []
        for n, r in rows[1:]:
            repeated = _repeated_header(path.name, header, r, n + base)
            if repeated:
                errors.append(repeated)
            else:
                data.append((n + base, r[:len(header)]))
        last = rows[-1][0] + base
        sheets.append((ws.title, [c.strip() for c in header], data))
    book.close()
    if not sheets:
        return pd.DataFrame()
    if any(h != sheets[0][1] for _, h, _ in sheets[1:]):
        names = ", ".join(repr(t) for t, _, _ in sheets)
        raise ReadError(Problem(path.name, None, None, "sheets",
                                f"sheets {names} hold data with different headers: keep one table per file"))
    if len(sheets) > 1:
        parts = "; ".join(f"{t} ({len(r)} rows)" for t, _, r in sheets)
        warnings.append(Problem(path.name, None, None, "sheets_combined",
                                f"{len(sheets)} sheets read as one table, in order: {parts}; rows are numbered as stacked"))
    width = len(sheets[0][1])
    data = [(n, r + [""] * (width - len(r))) for _, _, sheet_rows in sheets for n, r in sheet_rows]
    return pd.DataFrame([r for _, r in data], columns=sheets[0][1], index=[n - 2 for n, _ in data])


def sheet_names(path: Path) -> list[str]:
    """The sheets of a workbook, in order (none for other files)."""
    if Path(path).suffix.lower() != ".xlsx":
        return []
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    names = list(book.sheetnames)
    book.close()
    return names


def _stat_text(value) -> str:
    """A SAS or SPSS value as text: numbers as Python writes them (read back exactly), dates as YYYY-MM-DD."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return ""
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return value.strftime("%Y-%m-%d") if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)
    return str(value).strip()


STAT_READERS = {".sas7bdat": "read_sas7bdat", ".xpt": "read_xport", ".sav": "read_sav"}
SUFFIXES = (".csv", ".xlsx", *STAT_READERS)


def _read_stat(path: Path) -> pd.DataFrame:
    """A SAS or SPSS data file through pyreadstat, every cell as text; the column labels are kept in
    ``attrs["labels"]`` (and SPSS value labels in ``attrs["value_labels"]``), so a mapping may name a column by
    its label."""
    import pyreadstat

    try:
        frame, meta = getattr(pyreadstat, STAT_READERS[path.suffix.lower()])(str(path))
    except Exception as exc:  # noqa: BLE001 - pyreadstat raises its own types for every damaged file
        raise ReadError(Problem(path.name, None, None, "readable", f"cannot be read as {path.suffix}: {exc}")) from None
    out = pd.DataFrame({c: [_stat_text(v) for v in frame[c].tolist()] for c in frame.columns},
                       columns=list(frame.columns))
    out.attrs["labels"] = {c: label for c, label in zip(meta.column_names, meta.column_labels) if label}
    out.attrs["value_labels"] = dict(getattr(meta, "variable_value_labels", {}) or {})
    return out


def read_raw(path: Path, warnings: list[Problem] | None = None, errors: list[Problem] | None = None,
             sheet: str | None = None) -> pd.DataFrame:
    """A file as text cells, empty string for an empty cell, nothing converted yet; an empty file has no columns.

    CSV, XLSX (``sheet``: that sheet only), SAS (.sas7bdat, .xpt) and SPSS (.sav). The index is the row number as a
    spreadsheet shows it, minus 2. Raises ReadError (file, row, rule)
    for an encoding that is not UTF-8, another delimiter, rows with more fields than the header,
    a title row above the header, sheets with different headers, or a second header with other columns;
    a trailing delimiter, several sheets with one header and hidden sheets (left out) are read, with a
    warning; a row repeating the header is left out, with an error in ``errors``.
    """
    warnings = [] if warnings is None else warnings
    errors = [] if errors is None else errors
    path = Path(path)
    if path.stat().st_size == 0:
        return pd.DataFrame()
    suffix = path.suffix.lower()
    if suffix in STAT_READERS:
        return _read_stat(path)
    return _read_xlsx(path, warnings, errors, sheet) if suffix == ".xlsx" else _read_csv(path, warnings, errors)
