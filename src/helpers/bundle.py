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
from helpers.report.word import docx_name, write_docx
from helpers.trial import Trial

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


def report_stem(trial: Trial) -> str:
    """``<trial id>-<cut-off or "final">``: the name of the book's PDF and of the committee's reports."""
    return f"{trial.id}-{trial.cutoff.isoformat() if trial.cutoff else 'final'}"


def pdf_name(trial: Trial, marking: str | None = None) -> str:
    """The book as one PDF (``make pdf``, under ``html/downloads/``): ``NCT06984497-final.pdf``,
    ``NCT06984497-2026-03-31.pdf``; with a DSMB ``marking`` ("OPEN", "CLOSED"), ``...-open.pdf``."""
    return f"{report_stem(trial)}{'-' + marking.lower() if marking else ''}.pdf"


def dsmb_names(trial: Trial) -> tuple[str, str]:
    """The data monitoring committee's open (blinded) and closed (unblinded) reports (``make dsmb``)."""
    return pdf_name(trial, "OPEN"), pdf_name(trial, "CLOSED")


def dsmb_dir(build_dir: Path) -> Path:
    """Where ``make dsmb`` writes the committee's pair: beside the book, never inside it (``_build-dsmb``)."""
    return build_dir.with_name(build_dir.name + "-dsmb")


def reports_markdown(tree: Path, trial: Trial, dsmb: Path | None = None, printed: bool = False) -> str:
    """The page's list of the reports: the Word tables, the book's PDF and the committee's pair, each linked when
    it is in the build (``printed``: this build prints the PDF after the page is made; named, with where it is, when
    it is beside the book) and otherwise how to make it."""
    pdf = pdf_name(trial)
    pdf_line = (f"{_link(pdf)}, the whole book for committees and archives"
                if printed or (tree / "html" / "downloads" / pdf).exists()
                else f"not made with this build: `make pdf` prints the whole book to `_build/html/downloads/{pdf}`")
    pair = dsmb_names(trial)
    present = [n for n in pair if dsmb is not None and (dsmb / n).exists()]
    folder = f"`{dsmb.name}/`" if dsmb is not None else "`_build-dsmb/`"
    dsmb_line = (f"{' and '.join(f'`{n}`' for n in present)} in {folder}, beside the book and never inside it "
                 "(the closed report is for the committee alone)" if present
                 else f"not made: `make dsmb` writes the open (blinded) and closed (unblinded) reports of this export "
                      f"and cut-off, `{pair[0]}` and `{pair[1]}`, to {folder}, beside the book")
    return f"""## Reports

- **Word tables for the manuscript**: {_link(docx_name(trial))}: Table 1 (baseline characteristics), the primary
  endpoint, the secondary endpoints at the last visit and the adverse-event summary as Word tables in a journal's
  style (caption, three rules, notes, N per arm), after the summary of findings.
- **The book as one PDF**: {pdf_line}.
- **Data monitoring committee**: {dsmb_line}.
"""


def downloads_markdown(tree: Path, names: list[str], trial: Trial | None = None, dsmb: Path | None = None,
                       printed: bool = False) -> str:
    """The downloads page: links to every file the build publishes under ``downloads/``, and (given the trial) the
    reports: the Word tables, the book's PDF and the committee's pair (``reports_markdown``)."""
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
""" + ("\n" + reports_markdown(tree, trial, dsmb, printed) if trial is not None else "")


def write_downloads(tree: Path, html: Path, trial: Trial | None = None) -> None:
    """Copy the build's tables, data, results and figures under ``html/downloads`` and write the workbook, the
    RTF key tables and (given the trial) the Word tables there, numbered as the book numbers them."""
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
    if trial is not None:
        write_docx(tree, trial, target / docx_name(trial))
