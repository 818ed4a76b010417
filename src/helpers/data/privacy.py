"""The last line of defence for direct identifiers: scan built outputs for any identifier value of the raw export."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.data.schema import load_schema

SCANNED = {".csv", ".ipynb", ".md", ".html", ".txt", ".json", ".js"}


def identifier_values(raw_tables: dict[str, pd.DataFrame]) -> set[str]:
    """Every non-empty value of a direct-identifier column (names, phones, ID numbers, birth dates) as text."""
    values: set[str] = set()
    for name, spec in load_schema().items():
        table = raw_tables.get(name)
        if table is None:
            continue
        for column in spec.identifiers:
            if column in table:
                col = table[column].dropna()
                text = col.dt.strftime("%Y-%m-%d") if pd.api.types.is_datetime64_any_dtype(col) else col.astype(str)
                values.update(v.strip() for v in text if v.strip())
    return values


def find_identifiers(folder: Path, values: set[str]) -> list[tuple[Path, str]]:
    """(file, value) for every identifier value found in a text file below ``folder``."""
    hits = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix in SCANNED:
            text = path.read_text(encoding="utf-8", errors="ignore")
            hits += [(path, v) for v in sorted(values) if v in text]
    return hits
