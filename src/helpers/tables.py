"""Tables in a journal's look: caption, column headers with N, horizontal rules only, footnotes."""
from __future__ import annotations

import html
import re

import pandas as pd
from IPython.display import HTML

_CSS = """<style>
table.journal {border-collapse: collapse; margin: 0.5em 0 0.2em 0; font-size: 0.92em;}
table.journal caption {caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.4em;}
table.journal th, table.journal td {padding: 0.25em 0.8em; border: none; text-align: right;}
table.journal th:first-child, table.journal td:first-child {text-align: left;}
table.journal thead th {border-top: 1.5px solid #222; border-bottom: 1px solid #222; vertical-align: bottom;}
table.journal tbody tr:last-child td {border-bottom: 1.5px solid #222;}
p.journal-note {font-size: 0.85em; color: #444; margin-top: 0.2em;}
</style>"""


def journal_table(df: pd.DataFrame, caption: str, notes: str | None = None, index: bool = False,
                  table_id: str | None = None) -> HTML:
    """Render a DataFrame as a static, deterministic HTML table (no random ids, no memory addresses)."""
    body = df.to_html(index=index, na_rep="", border=0, classes="journal", escape=True,
                      float_format=lambda v: f"{v:g}")
    body = re.sub(r' style="text-align: right;"', "", body)
    body = re.sub(r"<table[^>]*>", f'<table class="journal"{_id(table_id)}>\n<caption>{html.escape(caption)}</caption>',
                  body, count=1)
    note = f'<p class="journal-note">{html.escape(notes)}</p>' if notes else ""
    return HTML(_CSS + body + note)


def _id(table_id: str | None) -> str:
    return f' id="{table_id}"' if table_id else ""
