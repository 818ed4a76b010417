"""Tables in a journal's look: caption, column headers with N, horizontal rules only, footnotes."""
from __future__ import annotations

import html
import re
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
from IPython.display import HTML

_CSS = """<style>
table.journal {border-collapse: collapse; margin: 0.5em 0 0.2em 0; font-size: 0.88em;}
table.journal caption {caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.4em;}
table.journal th, table.journal td {padding: 0.25em 0.8em; border: none; text-align: left; vertical-align: top;}
table.journal .r {text-align: right;}
table.journal td {white-space: nowrap;}
table.journal td:first-child {white-space: normal; min-width: 9em;}
table.journal thead th {border-top: 1.5px solid #222; border-bottom: 1px solid #222; vertical-align: bottom;}
table.journal tbody tr:last-child td {border-bottom: 1.5px solid #222;}
p.journal-note {font-size: 0.85em; color: #444; margin-top: 0.2em;}
div.journal-wrap {overflow-x: auto; max-width: 100%;}
</style>"""
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


def _cell(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return html.escape(str(value))


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


def journal_table(df: pd.DataFrame, caption: str, notes: str | None = None, table_id: str | None = None,
                  group_columns: int = 0) -> HTML:
    """Render a DataFrame as a static, deterministic HTML table (no random ids, no memory addresses).

    Text columns align left and numeric ones right; the first column is always left (row labels).
    Repeated labels in the first ``group_columns`` columns are shown once per group.
    """
    df = blank_repeats(df, group_columns) if group_columns else df
    align = [""] + [' class="r"' if _right_aligned(df[c]) else "" for c in df.columns[1:]]
    head = "".join(f"<th{a}>{html.escape(str(c))}</th>" for a, c in zip(align, df.columns))
    body = "\n".join("<tr>" + "".join(f"<td{a}>{_cell(v)}</td>" for a, v in zip(align, row)) + "</tr>"
                     for row in df.itertuples(index=False))
    table_attr = f' id="{table_id}"' if table_id else ""
    note = f'<p class="journal-note">{html.escape(notes)}</p>' if notes else ""
    return HTML(f'{_CSS}<div class="journal-wrap"><table class="journal"{table_attr}>\n<caption>{html.escape(caption)}</caption>\n'
                f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>{note}")
