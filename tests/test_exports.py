"""Submission formats and downloads: the ADaM datasets as SAS transport files read back against their CSVs,
and the book's tables as one XLSX workbook and as RTF, read back against the tables' CSVs."""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import zipfile

import openpyxl
import pandas as pd
import pyreadstat
import pytest

from helpers.data.adam import write_adam
from helpers.data.transport import DATASETS, VARIABLES, ascii_safe, write_xpt
from helpers.report.downloads import (
    CONTENTS,
    EMPTY_ROW,
    SavedTable,
    safe_cell_text,
    sheet_names,
    write_rtf,
    write_workbook,
)

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(scope="module")
def written(adam, trial, tmp_path_factory):
    """The ADaM datasets as CSV (write_adam) and as XPT (write_xpt), side by side."""
    folder = tmp_path_factory.mktemp("adam")
    write_adam(adam, folder)
    write_xpt(adam, folder, trial=trial)
    return folder


def _source_kind(values: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date"
    return "number" if pd.api.types.is_numeric_dtype(values) else "text"


def _xpt_kind(meta, column: str) -> str:
    if (meta.original_variable_types[column] or "").startswith("DATE"):
        return "date"
    return "number" if meta.readstat_variable_types[column] == "double" else "text"


def _same(kind: str, csv_text: str, value) -> bool:
    """One XPT value equals its CSV cell (the CSV holds 10 significant digits, write_adam's float format)."""
    missing = value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT
    if kind == "date":
        return csv_text == ("" if missing else value.isoformat())
    if kind == "number":
        return csv_text == "" if missing else math.isclose(float(csv_text), value, rel_tol=1e-9, abs_tol=1e-12)
    return csv_text == value


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_xpt_reads_back_as_the_csv(adam, written, dataset):
    csv = pd.read_csv(written / f"{dataset}.csv", dtype=str, keep_default_na=False)
    xpt, meta = pyreadstat.read_xport(written / f"{dataset}.xpt")
    assert meta.table_name == dataset.upper() and meta.file_label == DATASETS[dataset]
    assert list(xpt.columns) == list(csv.columns) and len(xpt) == len(csv)
    for column in csv.columns:
        label = meta.column_names_to_labels[column]
        assert len(column) <= 8 and label and len(label) <= 40, (column, label)
        kind = _xpt_kind(meta, column)
        assert kind == _source_kind(adam[dataset][column]), (dataset, column, kind)
        if kind == "date":
            assert csv[column].str.match(ISO_DATE).where(csv[column] != "", True).all()
        bad = [i for i, (c, v) in enumerate(zip(csv[column], xpt[column])) if not _same(kind, c, v)]
        assert not bad, f"{dataset}.{column} row {bad[:1]}: CSV {csv[column][bad[0]]!r} XPT {xpt[column][bad[0]]!r}"
        if kind == "text":
            assert xpt[column].map(str.isascii).all()


def test_xpt_dates_are_sas_dates_and_labels_are_cdisc(written):
    _, meta = pyreadstat.read_xport(written / "adsl.xpt", metadataonly=True)
    assert meta.original_variable_types["RANDDT"] == "DATE9"
    assert meta.readstat_variable_types["RANDDT"] == "double"
    raw, _ = pyreadstat.read_xport(written / "adsl.xpt", disable_datetime_conversion=True)
    first = pd.read_csv(written / "adsl.csv")["RANDDT"][0]
    assert raw["RANDDT"][0] == (pd.Timestamp(first) - pd.Timestamp("1960-01-01")).days
    _, lb = pyreadstat.read_xport(written / "adlb.xpt", metadataonly=True)
    _, tte = pyreadstat.read_xport(written / "adtte.xpt", metadataonly=True)
    assert meta.column_names_to_labels["USUBJID"] == "Unique Subject Identifier"
    assert meta.column_names_to_labels["TRT01P"] == "Planned Treatment for Period 01"
    assert lb.column_names_to_labels["AVAL"] == "Analysis Value"
    assert tte.column_names_to_labels["CNSR"] == "Censor"
    assert meta.column_names_to_labels["TBILBL"] == "Baseline Total bilirubin (umol/L)"
    # the trial file's covariates (a baseline value for a derived, class or clinical source) and a derived
    # parameter that is no covariate (its baseline under its own code)
    assert meta.column_names_to_labels["ASCITES"] == "Baseline Ascites"
    assert meta.column_names_to_labels["CPCLASS"] == "Baseline Child-Pugh class"
    assert meta.column_names_to_labels["ETIOLOGY"] == "Etiology"
    assert meta.column_names_to_labels["MELDNA"] == "Baseline MELD-Na score (points)"


def test_xpt_is_byte_reproducible_and_records_the_given_time(adam, trial, tmp_path):
    first, second = write_xpt(adam, tmp_path / "a", trial=trial), write_xpt(adam, tmp_path / "b", trial=trial)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    _, meta = pyreadstat.read_xport(first[0], metadataonly=True)
    assert meta.creation_time == meta.modification_time == dt.datetime(1980, 1, 1)
    when = dt.datetime(2026, 3, 4, 5, 6, 7)
    later = write_xpt(adam, tmp_path / "c", created=when, trial=trial)
    _, meta = pyreadstat.read_xport(later[0], metadataonly=True)
    assert meta.creation_time == when and meta.modification_time == when
    assert later[0].read_bytes() != first[0].read_bytes()


@pytest.mark.parametrize("column, value, message", [
    ("NEWVAR", 1, "adsl.NEWVAR: no label"),
    ("TOOLONGNM", 1, "adsl.TOOLONGNM: XPT v5 names are at most 8"),
    ("lower", 1, "adsl.lower: XPT v5 names"),
])
def test_a_column_breaking_the_rules_is_refused_and_nothing_written(adam, trial, tmp_path, column, value, message):
    broken = dict(adam, adsl=adam["adsl"].assign(**{column: value}))
    with pytest.raises(ValueError, match=re.escape(message)):
        write_xpt(broken, tmp_path, trial=trial)
    assert not list(tmp_path.glob("*.xpt"))


def test_values_are_refused_when_too_long_or_without_ascii_spelling(adam, trial, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"adsl\.DTHCAUS: .*'死'"):
        write_xpt(dict(adam, adsl=adam["adsl"].assign(DTHCAUS="死")), tmp_path, trial=trial)
    with pytest.raises(ValueError, match=r"adlb\.LBREASND: a value is longer than 200"):
        write_xpt(dict(adam, adlb=adam["adlb"].assign(LBREASND="x" * 201)), tmp_path, trial=trial)
    with pytest.raises(ValueError, match=r"adsl\.AGE: declared numeric"):
        write_xpt(dict(adam, adsl=adam["adsl"].assign(AGE="fifty")), tmp_path, trial=trial)
    with pytest.raises(ValueError, match=r"adsl\.RANDDT: declared a date"):
        write_xpt(dict(adam, adsl=adam["adsl"].assign(RANDDT="soon")), tmp_path, trial=trial)
    monkeypatch.setitem(VARIABLES, "SEX", ("A label that is far too long for a SAS transport file", "C"))
    with pytest.raises(ValueError, match=r"adsl\.SEX: label .* at most 40"):
        write_xpt(adam, tmp_path, trial=trial)


def test_character_values_are_spelled_in_ascii(adam, trial, tmp_path):
    assert ascii_safe("Child–Pugh ≥ 10, 17 µmol/L, café") == "Child-Pugh >= 10, 17 umol/L, cafe"
    write_xpt(dict(adam, adsl=adam["adsl"].assign(DTHCAUS="hépatite")), tmp_path, trial=trial)
    adsl, _ = pyreadstat.read_xport(tmp_path / "adsl.xpt")
    assert set(adsl["DTHCAUS"]) == {"hepatite"}


def test_every_declared_label_fits_xpt():
    assert all(0 < len(label) <= 40 and label.isascii() and kind in "CND" for label, kind in VARIABLES.values())
    assert all(0 < len(label) <= 40 for label in DATASETS.values())


# Tables as the book saves them: <name>.csv (the displayed table) and <name>.json (name, number, caption, notes).
TABLES = {
    "tab-baseline": ("3.1", "Baseline characteristics {by arm}",
                     "Median (IQR); n (%).\nSMD: standardized mean difference.",
                     pd.DataFrame({"Characteristic": ["Age, years", "MELD ≥ 20", "x_1 \\alpha µ }"],
                                   "Hepatic artery (N = 16)": ["47 (40–55)", "3 (18.8%)", "1.50"],
                                   "Peripheral vein (N = 16)": [1.0, 2.5, None],
                                   "Missing": [0, 2, 11], "Site": ["01", "02", "10"]})),
    "tab-all-visits": ("4.10", "Every visit", None,
                 pd.DataFrame({f"Week {w} change from baseline (95% CI)": ["-1.2 (-3.4 to 1.0)", "0.8 (-0.9 to 2.6)"]
                               for w in range(0, 28, 4)} | {"Arm": ["HA", "PV"]})),
    "tab-serious-listing": ("4.9", "Serious adverse events", "Listed by onset.",
                            pd.DataFrame({"Participant": pd.Series(dtype=str), "Event": pd.Series(dtype=str)})),
}


@pytest.fixture()
def tables_dir(tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    for name, (number, caption, notes, df) in TABLES.items():
        df.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
        meta = {"name": name, "number": number, "caption": caption, "notes": notes}
        (folder / f"{name}.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


def _csv_rows(folder, name) -> list[list[str]]:
    return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False).values.tolist()


def _shown(cell) -> str:
    """A cell as Excel shows it: a number with the decimals of its number format, else its text."""
    if isinstance(cell.value, (int, float)):
        decimals = len(cell.number_format.partition(".")[2])
        assert set(cell.number_format.replace(".", "")) == {"0"}, cell.number_format
        return f"{cell.value:.{decimals}f}"
    return cell.value or ""


def test_workbook_has_contents_and_a_sheet_per_table_in_number_order(tables_dir, tmp_path):
    wb = openpyxl.load_workbook(write_workbook(tables_dir, tmp_path / "tables.xlsx"))
    order = ["tab-baseline", "tab-serious-listing", "tab-all-visits"]
    assert wb.sheetnames == [CONTENTS, "3.1 baseline", "4.9 serious-listing", "4.10 all-visits"]
    contents = list(wb[CONTENTS].iter_rows(values_only=True))
    assert contents[0] == ("Table", "Caption", "Sheet")
    assert contents[1:] == [(TABLES[n][0], TABLES[n][1], s) for n, s in zip(order, wb.sheetnames[1:])]
    for name, sheet in zip(order, wb.sheetnames[1:]):
        number, caption, notes, _ = TABLES[name]
        ws = wb[sheet]
        assert ws["A1"].value == f"Table {number}. {caption}"
        header = pd.read_csv(tables_dir / f"{name}.csv", nrows=0).columns.tolist()
        assert [c.value for c in ws[2]][:len(header)] == header and all(c.font.b for c in ws[2][:len(header)])
        rows = _csv_rows(tables_dir, name)
        for i, row in enumerate(rows, start=3):
            for cell, text in zip(ws[i], row):
                assert _shown(cell) == text, (sheet, cell.coordinate)
        below = [ws.cell(row=len(rows) + 4 + k, column=1).value for k in range(3)]
        assert [v for v in below if v] == (notes.splitlines() if notes else [])


def test_workbook_is_byte_reproducible(tables_dir, tmp_path):
    path = write_workbook(tables_dir, tmp_path / "a.xlsx")
    assert write_workbook(tables_dir, tmp_path / "b.xlsx").read_bytes() == path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    props = openpyxl.load_workbook(path).properties
    assert props.created == props.modified == dt.datetime(1980, 1, 1)


def test_workbook_numbers_are_numbers_showing_the_tables_decimals(tables_dir, tmp_path):
    ws = openpyxl.load_workbook(write_workbook(tables_dir, tmp_path / "t.xlsx"))["3.1 baseline"]
    assert (ws["C3"].value, ws["C3"].number_format) == (1, "0.0")
    assert (ws["B5"].value, ws["B5"].number_format) == (1.5, "0.00")
    assert (ws["D5"].value, ws["D5"].number_format) == (11, "0")
    assert ws["B3"].value == "47 (40–55)" and ws["C5"].value is None and ws["E3"].value == "01"


def test_sheet_names_are_short_unique_and_legal():
    names = ["tab-" + "a" * 40, "tab-" + "a" * 40 + "b", "tab-x/y:z'", "tab-Contents", "Contents"]
    sheets = sheet_names([SavedTable(n, None if n == "Contents" else "12.3", "c", None, [], []) for n in names])
    assert sheets[:4] == ["12.3 " + "a" * 26, "12.3 " + "a" * 24 + "~2", "12.3 x-y-z-", "12.3 Contents"]
    assert sheets[4] == "Contents~2"
    assert all(len(n) <= 31 and not set(n) & set("[]:*?/\\'") for n in sheets)


_CELL = re.compile(r"\{\\f0(?:\\b)? ((?:[^{}\\]|\\.)*)\}\\cell")


def _rtf_plain(text: str) -> str:
    """RTF text as a reader shows it: \\u escapes decoded, \\line a newline, other control words and group
    braces gone, \\{ \\} \\\\ literal."""
    text = re.sub(r"\\uc1\\u(-?\d+)\*", lambda m: chr(int(m[1]) % 65536), text).replace("\\line ", "\n")
    return re.sub(r"\\([\\{}])|\\[a-zA-Z]+-?\d* ?|[{}]", lambda m: m[1] or "", text)


def _balanced(rtf: str) -> bool:
    depth = 0
    for brace in re.sub(r"\\[\\{}]", "", rtf):
        depth += {"{": 1, "}": -1}.get(brace, 0)
        if depth < 0:
            return False
    return depth == 0


def test_rtf_key_tables_hold_title_headers_body_and_footnotes(tables_dir, tmp_path):
    names = list(TABLES)
    paths = write_rtf(tables_dir, names, tmp_path / "rtf")
    assert paths == [tmp_path / "rtf" / f"{n}.rtf" for n in names]
    for name, path in zip(names, paths):
        number, caption, notes, _ = TABLES[name]
        rtf = path.read_text(encoding="ascii")
        assert rtf.startswith("{\\rtf1") and rtf.rstrip().endswith("}") and _balanced(rtf)
        assert f"Table {number}" in rtf and caption in _rtf_plain(rtf)
        header = pd.read_csv(tables_dir / f"{name}.csv", nrows=0).columns.tolist()
        body = [c for row in _csv_rows(tables_dir, name) for c in row] or [EMPTY_ROW] + [""] * (len(header) - 1)
        cells = [_rtf_plain(c) for c in _CELL.findall(rtf)]
        assert cells == header + body + ([notes] if notes else []), name
    assert "\\landscape" in paths[1].read_text() and "\\landscape" not in paths[0].read_text()


@pytest.mark.parametrize("text, safe", [
    ("Hepatic\nfailure", "Hepatic failure"), ("a\r\nb", "a b"), ("x\x0by", "x y"), ("tab\there", "tab here"),
    ("form\x0cfeed\x00\x7f", "form feed"), ("line\u2028para\u2029end", "line para end"), ("a \n\n  b", "a b"),
    ("\n lead and trail \t", "lead and trail"), ("\u2003indented  twice", "\u2003indented  twice"), ("", "")])
def test_safe_cell_text_puts_text_on_one_line(text, safe):
    assert safe_cell_text(text) == safe


DIRTY = pd.DataFrame({"Participant": ["01-001", "01-002", "01-003", "01-004"],
                      "Record": ["Serious AE", "Death", "Serious AE", "Serious AE"],
                      "Term\n(verbatim)": ["Hepatic\nfailure", "a\r\nb", "x\x0by", "tab\there"]})
CLEAN_TERMS = ["Hepatic failure", "a b", "x y", "tab here"]


def test_control_characters_in_a_table_are_written_cleaned_to_rtf_and_xlsx(tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    DIRTY.to_csv(folder / "tab-serious-listing.csv", index=False, lineterminator="\n")
    meta = {"name": "tab-serious-listing", "number": "6.4", "caption": "Deaths and\nserious events",
            "notes": "Verbatim\tterms.\nSecond line."}
    (folder / "tab-serious-listing.json").write_text(json.dumps(meta), encoding="utf-8")
    rtf = write_rtf(folder, ["tab-serious-listing"], tmp_path / "rtf")[0].read_text(encoding="ascii")
    assert _balanced(rtf) and "Deaths and serious events" in _rtf_plain(rtf)
    header = ["Participant", "Record", "Term (verbatim)"]
    body = [c for row in DIRTY.assign(**{"Term\n(verbatim)": CLEAN_TERMS}).values.tolist() for c in row]
    assert [_rtf_plain(c) for c in _CELL.findall(rtf)] == header + body + ["Verbatim terms.\nSecond line."]
    ws = openpyxl.load_workbook(write_workbook(folder, tmp_path / "tables.xlsx"))["6.4 serious-listing"]
    assert ws["A1"].value == "Table 6.4. Deaths and serious events"
    assert [c.value for c in ws[2]] == header
    assert [ws.cell(row=i, column=3).value for i in range(3, 7)] == CLEAN_TERMS
    assert [ws.cell(row=i, column=1).value for i in (8, 9)] == ["Verbatim terms.", "Second line."]


def test_downloads_of_a_build_with_line_breaks_in_terms_and_causes_of_death(clean_dir, tmp_path):
    import shutil

    from helpers import bundle, paths
    from helpers.analysis import safety
    from helpers.chapter import load_cohort
    from helpers.report import safety as safety_report
    from helpers.report.tables import journal_table, save_tables_to

    export = tmp_path / "export"
    shutil.copytree(clean_dir, export)
    events = pd.read_csv(export / "events.csv", dtype=str, keep_default_na=False)
    serious = events.index[(events["event_type"] == "AE") & (events["serious"] == "Y")][0]
    death = events.index[events["event_type"] == "DEATH"][0]
    events.loc[serious, "term"], events.loc[death, "term"] = "Hepatic\nfailure", "liver\r\nfailure\tacute"
    events.to_csv(export / "events.csv", index=False, lineterminator="\n")
    c = load_cohort(str(export), paths.DEFAULT_TRIAL)
    adae, dth = safety.build_adae(c.export, c.adsl, c.trial), safety.deaths(c.export, c.adsl, c.trial)
    results = safety.adverse_event_results(adae, dth, c.adsl, c.trial)
    header = safety_report.safety_header(c.adsl, c.trial)
    tree = tmp_path / "build"
    save_tables_to(tree)
    try:
        journal_table(safety_report.serious_listing(adae, dth), "Deaths and serious adverse events",
                      "tab-serious-listing")
        journal_table(safety_report.term_table(results, header), "Adverse events by term", "tab-ae-terms")
    finally:
        save_tables_to(None)
    bundle.write_downloads(tree, tree / "html")
    downloads = tree / "html" / "downloads"
    rtf = _rtf_plain((downloads / "rtf" / "tab-serious-listing.rtf").read_text(encoding="ascii"))
    assert "Hepatic failure" in rtf and "liver failure acute" in rtf
    wb = openpyxl.load_workbook(downloads / "tables.xlsx")
    texts = {c for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if isinstance(c, str)}
    assert {"Hepatic failure", "liver failure acute"} <= texts
    assert not [t for t in texts if re.search(r"[\x00-\x1f\x7f]", t)]
