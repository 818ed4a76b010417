"""Tables in a journal's look: caption, column headers with N, horizontal rules only, footnotes."""
from __future__ import annotations

import html
import json
import re
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
from pathlib import Path

_CSS = "<style>" + (Path(__file__).parent / "static" / "journal.css").read_text(encoding="utf-8") + "</style>"
CAPTION_SLOT = "@@CAPTION@@"
_NUMBER_LIKE = re.compile(r"^\s*(?:[<>≤≥]\s*)?[-+−]?(?:\d|\.\d)")


def fixed(x: float, digits: int = 1) -> str:
    """``x`` with ``digits`` decimals, halves rounded away from zero on the printed decimal value, as SAS and
    clinical tables do (Python's own formatting rounds the binary value, so 6.25 would print as 6.2)."""
    return str(Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def n_pct(n: int, total: int, digits: int = 1) -> str:
    """'n (x.x%)', the way clinical tables print a count and its percentage."""
    return f"{n} ({fixed(100 * n / total, digits)}%)" if total else f"{n}"


def recorded_decimals(values: pd.Series, most: int = 2) -> int:
    """Decimals the data are recorded with (at most ``most``); summaries print one more."""
    v = pd.Series(values).astype("Float64").dropna().to_numpy(dtype=float)
    return next((d for d in range(most + 1) if np.allclose(v, np.round(v, d))), most)


_BRACKETED = re.compile(r"[(\[][^()\[\]]*[)\]]")


def _cell(value) -> str:
    """A cell's HTML. An interval or a count in brackets never breaks inside ('1.01 (0.87 to 1.17)' may break only
    before its bracket), so a narrow column wraps a statistic cleanly instead of widening the table."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return html.escape(_BRACKETED.sub(lambda m: m.group(0).replace(" ", "\u00a0"), str(value)))


def _right_aligned(column: pd.Series) -> bool:
    """Numbers, and text that reads as numbers (counts with percentages, estimates with CIs), align right."""
    if pd.api.types.is_numeric_dtype(column):
        return True
    present = column.dropna().astype(str)
    present = present[present.str.strip() != ""]
    return len(present) > 0 and bool(present.str.match(_NUMBER_LIKE).all())


def blank_repeats(df: pd.DataFrame, columns: int) -> pd.DataFrame:
    """Show a label in the first ``columns`` columns only where it changes, as grouped journal tables do."""
    out = df.astype({c: object for c in df.columns[:columns]})
    same = pd.Series(True, index=df.index)
    for c in df.columns[:columns]:
        same &= df[c].eq(df[c].shift())
        out.loc[same, c] = ""
    return out


class JournalTable:
    """A table for the book and for the notebook: in the book it is a ``{journal-table}`` that Sphinx numbers per
    chapter (``book_ext``); in Jupyter it shows as HTML."""

    def __init__(self, body: str, caption: str, name: str):
        self.body, self.caption, self.name = body, caption, name

    def __repr__(self) -> str:
        return f"{self.name}: {self.caption}"

    def _repr_markdown_(self) -> str:
        return f"````{{journal-table}} {self.caption}\n:name: {self.name}\n\n{self.body}\n````\n"

    def _repr_html_(self) -> str:
        return _CSS + self.body.replace(CAPTION_SLOT, html.escape(self.caption))

    @property
    def data(self) -> str:
        return self._repr_html_()


_downloads: dict[str, Path | None] = {"folder": None}
DOWNLOADS_URL = "../../downloads"


def save_tables_to(output_dir: str | Path | None) -> None:
    """Write every table a notebook shows to <output_dir>/tables/<name>.csv, with its caption and notes in
    <name>.json, and link it from the table; nothing when output_dir is None (an analyst's session)."""
    _downloads["folder"] = Path(output_dir) / "tables" if output_dir is not None else None


def _save_table(df: pd.DataFrame, name: str, caption: str, notes: str | None) -> bool:
    folder = _downloads["folder"]
    if folder is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
    (folder / f"{name}.json").write_text(json.dumps({"name": name, "caption": caption, "notes": notes}, indent=1),
                                         encoding="utf-8")
    return True


WRAP_AFTER = 16


def _td(align: str, value) -> str:
    """A body cell. Numbers stay on one line; a long statistic (a median with its quartiles, an estimate with its
    interval) may wrap before its bracket when the column is narrow."""
    text = _cell(value)
    if align and len(text) > WRAP_AFTER:
        align = ' class="r w"'
    return f"<td{align}>{text}</td>"


def constant_columns(df: pd.DataFrame, keep: int = 1) -> list[str]:
    """Columns after the first ``keep`` that hold one value in every row (of two or more): the caption says it once."""
    if len(df) < 2:
        return []
    return [c for c in df.columns[keep:] if df[c].astype(str).nunique(dropna=False) == 1]


def fold_constant_columns(df: pd.DataFrame, caption: str, keep: int = 1) -> tuple[pd.DataFrame, str]:
    """``df`` without its constant columns (``constant_columns``), and ``caption`` saying each non-empty one once
    ("...; Covariance: us"): how the book shows a table (the Word tables too)."""
    constant = constant_columns(df, keep)
    said = [f"{c}: {df[c].iloc[0]}" for c in constant if _cell(df[c].iloc[0])]
    return df.drop(columns=constant), "; ".join([caption] + said)


def journal_table(df: pd.DataFrame, caption: str, name: str, notes: str | None = None, group_columns: int = 0,
                  empty: str = "None.") -> JournalTable:
    """Render a DataFrame as a numbered, static, deterministic journal table (no random ids, no memory addresses).

    ``name`` (``tab-...``) is the label the prose cites with ``{numref}`` and the name of its CSV download.
    Text columns align left and numbers right; repeated labels in the first ``group_columns`` columns are shown
    once per group; a column with one value in every row moves into the caption; an empty table shows ``empty``.
    """
    saved = _save_table(df, name, caption, notes)
    df, caption = fold_constant_columns(df, caption, max(group_columns, 1))
    shown = blank_repeats(df, group_columns) if group_columns else df
    align = [""] + [' class="r"' if _right_aligned(df[c]) else "" for c in df.columns[1:]]
    head = "".join(f"<th{a}>{html.escape(str(c))}</th>" for a, c in zip(align, df.columns))
    body = "\n".join("<tr>" + "".join(_td(a, v) for a, v in zip(align, row)) + "</tr>" for row in shown.itertuples(index=False))
    if df.empty:
        body = f'<tr><td colspan="{max(len(df.columns), 1)}">{html.escape(empty)}</td></tr>'
    links = (f' <a href="{DOWNLOADS_URL}/tables/{name}.csv">CSV</a> · '
             f'<a href="{DOWNLOADS_URL}/tables.xlsx">all tables (XLSX)</a>') if saved else ""
    note = f'<p class="journal-note">{html.escape(notes or "")}{links}</p>' if notes or links else ""
    return JournalTable(f'<div class="journal-wrap"><table class="journal">\n<caption>{CAPTION_SLOT}</caption>\n'
                        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>{note}",
                        caption, name)
