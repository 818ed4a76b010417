"""The book's downloads: every table as CSV, one XLSX workbook, the key tables as RTF, the ADaM datasets
(CSV and SAS transport), the results and the figures, under ``html/downloads/`` with a page that lists them."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat

from helpers.report.book_ext import TABLE_NUMBERS
from helpers.report.downloads import write_rtf, write_workbook

URL = "../../downloads"
KEY_TABLES = ("tab-key-results", "tab-baseline", "tab-ancova", "tab-mmrm", "tab-holm", "tab-tte-summary",
              "tab-ae-summary", "tab-serious-listing")
FOLDERS = ("tables", "data", "results", "figures")
_NAME = re.compile(r"^:name: (tab-[\w-]+)$", re.MULTILINE)


def table_names(notebooks: list[Path]) -> list[str]:
    """The journal tables in the order the book shows them, read from the executed notebooks' outputs."""
    names = []
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            for out in cell.get("outputs", []):
                names += _NAME.findall(out.get("data", {}).get("text/markdown", ""))
    return list(dict.fromkeys(names))


def _link(path: str, text: str | None = None) -> str:
    return f'<a href="{URL}/{path}">{text or Path(path).name}</a>'


def downloads_markdown(tree: Path, names: list[str]) -> str:
    """The downloads page: links to every file the build publishes under ``downloads/``."""
    tables = "\n".join(f"| {{numref}}`{n}` | {_link(f'tables/{n}.csv', 'CSV')} |" for n in names)
    rtf = ", ".join(f"{{numref}}`{n}` ({_link(f'rtf/{n}.rtf', 'RTF')})" for n in KEY_TABLES if n in names)
    data = "\n".join(f"| {p.stem.upper()} | {_link(f'data/{p.name}', 'CSV')} | {_link(f'data/{p.stem}.xpt', 'XPT')} |"
                     for p in sorted((tree / "data").glob("*.csv")))
    figures = "\n".join(f"| {p.stem} | {_link(f'figures/{p.name}', 'PNG')} | {_link(f'figures/{p.stem}.svg', 'SVG')} |"
                        for p in sorted((tree / "figures").glob("*.png")))
    results = ", ".join(_link(f"results/{p.name}") for p in sorted((tree / "results").glob("*.csv")))
    return f"""# Downloads

Every table of the book is a CSV file, and all of them are in one workbook, {_link('tables.xlsx')}. The key
tables are also in the layout of a clinical study report, as RTF: {rtf}.

| Table | File |
|---|---|
{tables}

## Analysis datasets

The ADaM datasets as CSV and as SAS transport files (version 5, variable names of at most 8 characters,
labels of at most 40), the format regulators and SAS users take.

| Dataset | CSV | SAS transport |
|---|---|---|
{data}

## Results and figures

The tidy result tables the chapters compute: {results}.

| Figure | PNG | SVG |
|---|---|---|
{figures}
"""


def write_downloads(tree: Path, html: Path) -> None:
    """Copy the build's tables, data, results and figures under ``html/downloads`` and write the workbook and
    the RTF key tables there, numbered as the book numbers them."""
    target = html / "downloads"
    for folder in FOLDERS:
        if (tree / folder).exists():
            shutil.copytree(tree / folder, target / folder)
    numbers_file = html / TABLE_NUMBERS
    numbers = json.loads(numbers_file.read_text(encoding="utf-8")) if numbers_file.exists() else {}
    for name, number in numbers.items():
        meta = target / "tables" / f"{name}.json"
        if meta.exists():
            meta.write_text(json.dumps(json.loads(meta.read_text(encoding="utf-8")) | {"number": number}, indent=1),
                            encoding="utf-8")
    write_workbook(target / "tables", target / "tables.xlsx")
    present = [n for n in KEY_TABLES if (target / "tables" / f"{n}.csv").exists()]
    write_rtf(target / "tables", present, target / "rtf")
