"""Every printed number is traceable: each number a built book glues into its prose, and each number in a cell of
its journal tables, is found in the analysis results dataset (``_build/results/ard.csv``) at the precision printed.

A number is found when a value of the ARD, as it is or as a percentage (x 100), rounds to it at the decimals shown
(sign aside: an effect is printed in the direction that favours an arm). Dates are not results; row labels
(a table's first column) and column headers are labels. Listings of participants' own records (tables captioned
"Listing of ..." or "Participants who/whose ...") are data, not results."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import pipeline
from helpers.analysis.ard import read_ard

NUMBER = re.compile(r"(?<![\w.])[-−]?\d+(?:,\d{3})*(?:\.\d+)?(?!\w)")
DATE = re.compile(r"\d{1,2} [A-Z][a-z]+ \d{4}|\d{4}-\d{2}-\d{2}|[A-Z][a-z]+ \d{4}")
LISTING = re.compile(r"^(Listing of|Participants whose|Participants who)")


def numbers(text: str) -> list[str]:
    """The numbers of a printed text, as printed (thousands separators dropped), dates left out."""
    return [m.group(0).replace("−", "-").replace(",", "") for m in NUMBER.finditer(DATE.sub(" ", text))]


def traced(token: str, values: np.ndarray) -> bool:
    x = abs(float(token))
    decimals = len(token.split(".")[1]) if "." in token else 0
    half = 0.5 * 10.0 ** -decimals * (1 + 1e-9)
    return any(np.any(np.abs(np.abs(values * scale) - x) <= half) for scale in (1, 100))


def printed_numbers(tree: Path) -> list[tuple[str, str, str]]:
    """(where, text, number) for every number of every glued value and journal-table cell of a built tree."""
    out = []
    for path in sorted((tree / "tables").glob("*.csv")):
        caption = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["caption"]
        if LISTING.match(caption) or not path.read_text(encoding="utf-8").strip():
            continue
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        for column in table.columns[1:]:
            out += [(f"{path.stem} [{column}]", cell, n) for cell in table[column] for n in numbers(cell)]
    for nb in sorted((tree / "generated").glob("*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            for o in cell.get("outputs", []):
                name = o.get("metadata", {}).get("scrapbook", {}).get("name")
                if name:
                    text = str(o["data"].get("application/papermill.record/text/plain", ""))
                    out += [(f"{nb.stem}: glue {name}", text, n) for n in numbers(text)]
    return out


def untraced(tree: Path) -> list[str]:
    values = read_ard(tree / "results" / "ard.csv")["STAT"].dropna().to_numpy()
    return [f"{where}: {number} in {text[:80]!r}" for where, text, number in printed_numbers(tree)
            if not traced(number, values)]


def test_the_rule_finds_a_number_at_its_printed_precision():
    values = np.array([0.80769, 16.0, -2.2749, 1380.0])
    assert numbers("80.8 (51.4 to 93.4); 1,380 values; 01 July 2025 to 2026-01-01") == ["80.8", "51.4", "93.4", "1380"]
    assert traced("80.8", values) and traced("0.81", values) and traced("16", values) and traced("2.27", values)
    assert traced("1380", values)
    assert not traced("80.7", values) and not traced("16.1", values) and not traced("2.28", values)


@pytest.fixture(scope="module", params=["NCT06984497", "DEMO-ORAL"])
def built(request, tmp_path_factory):
    build_dir = tmp_path_factory.mktemp(request.param) / "_build"
    pipeline.run(trial=request.param, build_dir=build_dir, log=lambda *_: None)
    return build_dir


@pytest.mark.slow
def test_every_printed_number_is_in_the_ard(built):
    printed = printed_numbers(built)
    assert len(printed) > 500, "the book printed fewer numbers than expected: is the collection broken?"
    missing = untraced(built)
    assert not missing, f"{len(missing)} printed number(s) not in the ARD:\n" + "\n".join(missing[:40])
