"""Site exports in their own shape give the canonical export's results through their export mapping (issue 18).

Three constructed sites (tests/site_exports.py): a Chinese hospital (Chinese headers and codes, DD/MM/YYYY dates and
date-times, Excel day numbers, a workbook with a notes sheet, labs long with a unit per row, some total bilirubin in
mg/dL), an SDTM-like LB domain and SAS transport files. Each is checked against the canonical export it was built
from: the clean synthetic export, and a copy with missing results (empty cells, missing-value codes) and results
beyond a limit, which must survive the trip.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import site_exports as se
from helpers.data.adam import build_adam
from helpers.data.loading import REPORTED, export_from, validate_export

SITES = {"chinese": se.chinese_export, "sdtm_lb": se.sdtm_lb_export, "xpt": se.xpt_export}
# Canonical labs cells (row, column) replaced by a missing result, a missing-value code or a result beyond a limit.
LAB_QUIRKS = {(1, "alt"): "", (2, "alb"): "ND", (4, "ast"): "<25", (6, "sodium"): "HEMOLYZED", (9, "tbil"): "",
              (12, "creat"): "QNS", (15, "alp"): ">2000", (21, "inr"): ""}


def checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module", params=["clean", "missing results"])
def canonical(request, clean_dir, tmp_path_factory):
    """The clean synthetic export, or a copy whose labs have empty cells, missing-value codes and limits."""
    if request.param == "clean":
        return clean_dir
    folder = tmp_path_factory.mktemp("canonical_quirks")
    shutil.copytree(clean_dir, folder, dirs_exist_ok=True)
    labs = pd.read_csv(folder / "labs.csv", dtype=str, keep_default_na=False)
    for (row, column), text in LAB_QUIRKS.items():
        labs.loc[row, column] = text
    labs.to_csv(folder / "labs.csv", index=False, lineterminator="\n")
    return folder


def adam_of(folder: Path, trial, mapping=None, effects=None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The validated tables and ADaM (no error allowed), as a build derives them (helpers.chapter.read_data,
    cohort_from)."""
    kwargs = {} if mapping is None else {"mapping": mapping, "effects": effects}
    tables, errors, warnings = validate_export(folder, trial, **kwargs)
    assert not errors, "\n".join(map(str, errors[:20]))
    return tables, build_adam(export_from(tables, warnings, folder, trial), trial)


@pytest.fixture(scope="module")
def reference(canonical, trial):
    return adam_of(canonical, trial)


@pytest.fixture(scope="module", params=list(SITES))
def site(request, canonical, trial, tmp_path_factory):
    """(name, folder, mapping, raw checksums before reading, validated tables, ADaM, mapping effects)."""
    folder = tmp_path_factory.mktemp(request.param) / "export"
    mapping = SITES[request.param](canonical, folder, trial)
    before = checksums(folder)
    effects: list = []
    tables, adam = adam_of(folder, trial, mapping, effects)
    return request.param, folder, mapping, before, tables, adam, effects


def text(values: pd.Series) -> pd.Series:
    """Cells as text, a missing value as "<NA>" (pandas' astype(str) keeps missing values missing)."""
    return values.astype(object).where(values.notna(), "<NA>").astype(str)


def first_difference(got: pd.DataFrame, want: pd.DataFrame) -> str:
    """Where two tables first differ (column, row, both values), for a failure message."""
    if list(got.columns) != list(want.columns):
        return f"columns {list(got.columns)} != {list(want.columns)}"
    if len(got) != len(want):
        return f"{len(got)} rows != {len(want)}"
    for column in got.columns:
        a, b = text(got[column]), text(want[column])
        if not a.equals(b):
            row = int((a != b).to_numpy().nonzero()[0][0])
            return f"column {column}, row {row}: {a.iloc[row]!r} != {b.iloc[row]!r}"
    return "the same text, other dtypes"


def test_the_validated_tables_are_the_canonical_ones(site, reference):
    """Every typed table equals the canonical one; the index may differ (the raw file's own row numbers). In labs,
    the columns of the result as reported are left out: <test>_unit (the unit a long row named, which the canonical
    export, all in the panel's units, has not) and <test>__reported (see the ADLB test)."""
    name, *_, tables, _, _ = site
    for file, want in reference[0].items():
        got = tables[file].reset_index(drop=True)
        want = want.reset_index(drop=True)
        if file == "labs":
            got = got.drop(columns=[c for c in got if c.endswith((REPORTED, "_unit"))])
            want = want.drop(columns=[c for c in want if c.endswith((REPORTED, "_unit"))])
        assert got.to_csv() == want.to_csv(), f"{name}: {file}: {first_difference(got, want)}"


def test_adsl_and_adtte_are_byte_identical(site, reference):
    name, *_, adam, _ = site
    for dataset in ("adsl", "adtte"):
        got, want = adam[dataset], reference[1][dataset]
        assert got.to_csv() == want.to_csv(), f"{name}: {dataset}: {first_difference(got, want)}"


def test_adlb_is_identical_but_for_the_text_as_reported(site, reference):
    """ADLB equals the canonical one in every column but AVALC, the result as reported where the loader converted
    it or it is beyond a limit: a total bilirubin the Chinese site reported in mg/dL keeps that text and unit
    ("3.2105263157894735 mg/dL") where the canonical export, in umol/L, has none. Only those rows differ."""
    name, folder, *_, adam, _ = site
    got, want = adam["adlb"], reference[1]["adlb"]
    assert got.drop(columns="AVALC").to_csv() == want.drop(columns="AVALC").to_csv(), \
        f"{name}: {first_difference(got.drop(columns='AVALC'), want.drop(columns='AVALC'))}"
    differ = text(got["AVALC"]) != text(want["AVALC"])
    if name != "chinese":
        assert not differ.any(), f"{name}: AVALC {first_difference(got[['AVALC']], want[['AVALC']])}"
        return
    labs = pd.read_csv(folder / "检验结果.csv", dtype=str, keep_default_na=False)
    in_mg = labs[labs["单位"] == "mg/dL"]
    assert len(in_mg) >= 20
    assert differ.sum() == len(in_mg)
    assert set(got.loc[differ, "PARAMCD"]) == {"TBIL"} and want.loc[differ, "AVALC"].isna().all()
    assert sorted(got.loc[differ, "AVALC"]) == sorted(in_mg["结果"] + " mg/dL")


def test_the_raw_files_are_unchanged(site, trial):
    """Reading, validating and deriving ADaM leave every raw file as the site sent it."""
    name, folder, mapping, before, *_ = site
    adam_of(folder, trial, mapping)
    assert checksums(folder) == before, name


def test_the_mapping_reports_what_it_did(site):
    """The effects the validation report lists, with counts known from the files: the long rows pivoted into the
    canonical samples, the Chinese site's results by unit and its constant, the SAS files' renames."""
    name, folder, *_, tables, _, effects = site
    done = {(e.file, e.action) for e in effects}
    if name == "xpt":
        renamed = {e.column: e.count for e in effects if e.file == "events" and e.action == "renamed"}
        assert renamed["RELATEDN"] == len(tables["events"])
        assert ("labs", "pivoted") not in done
        return
    long_file = folder / ("检验结果.csv" if name == "chinese" else "lb.csv")
    rows = len(pd.read_csv(long_file, dtype=str))
    assert [(e.count, e.detail.split(" -> ")[-1].split(" ")[0]) for e in effects if e.action == "pivoted"] == \
        [(rows, str(len(tables["labs"])))]
    if name == "chinese":
        labs = pd.read_csv(long_file, dtype=str, keep_default_na=False)
        units = {e.detail: e.count for e in effects if e.file == "labs" and e.action == "unit"}
        assert units["tbil: mg/dL"] == (labs["单位"] == "mg/dL").sum() > 0
        assert [e.count for e in effects if e.action == "constant" and e.column == "dose_no"] == [len(tables["dosing"])]
        assert ("screening", "dates parsed") in done and ("events", "recoded") in done


def test_a_long_row_with_an_empty_result_is_an_empty_cell(clean_dir, trial, tmp_path):
    """The builder writes no row for an empty canonical cell; a laboratory system that writes the row with an empty
    result gives the same tables (the cell is missing, with no reason)."""
    canonical = tmp_path / "canonical"
    shutil.copytree(clean_dir, canonical)
    labs = pd.read_csv(canonical / "labs.csv", dtype=str, keep_default_na=False)
    labs.loc[1, "alt"] = ""
    labs.to_csv(canonical / "labs.csv", index=False, lineterminator="\n")
    without = tmp_path / "without"
    mapping = se.chinese_export(canonical, without, trial)
    with_row = tmp_path / "with"
    shutil.copytree(without, with_row)
    long = pd.read_csv(with_row / "检验结果.csv", dtype=str, keep_default_na=False)
    sample = long[(long["受试者编号"] == labs.at[1, "subject_id"]) & (long["访视"] == "第4周")]
    assert labs.at[1, "visit"] == "WEEK4" and not sample["检验项目"].isin(["丙氨酸氨基转移酶", "ALT"]).any()
    empty = sample.iloc[[0]].assign(检验项目="丙氨酸氨基转移酶", 结果="", 单位="U/L", 参考范围="7-40")
    long = pd.concat([long.loc[:sample.index[0] - 1], empty, long.loc[sample.index[0]:]], ignore_index=True)
    long.to_csv(with_row / "检验结果.csv", index=False, lineterminator="\n")
    tables = [adam_of(folder, trial, mapping)[0]["labs"].reset_index(drop=True) for folder in (without, with_row)]
    assert tables[0].to_csv() == tables[1].to_csv()
    assert pd.isna(tables[1].at[1, "alt"]) and pd.isna(tables[1].at[1, "alt__reason"])


# --- the site files as built ---------------------------------------------------------------------------------------

def test_the_chinese_export_is_in_the_sites_shape(clean_dir, trial, tmp_path):
    """Chinese headers and codes, DD/MM/YYYY with a day above 12, Excel day numbers, a notes sheet before the data,
    labs long with their own units and a reference range, mg/dL texts that convert back exactly."""
    from openpyxl import load_workbook

    se.chinese_export(clean_dir, tmp_path, trial)
    book = load_workbook(tmp_path / "筛选表.xlsx")
    assert book.sheetnames == ["说明", "筛选"]
    header, first = list(book["筛选"].iter_rows(values_only=True))[:2]
    assert header[:3] == ("筛选号", "姓名", "电话") and first[header.index("性别")] in ("男", "女")
    assert isinstance(first[header.index("出生日期")], int)
    rand = pd.read_csv(tmp_path / "随机化记录.csv", dtype=str)
    assert set(rand["组别"]) == {"肝动脉", "外周静脉"}
    assert rand["随机日期"].str.match(r"^\d\d/\d\d/\d{4}$").all()
    assert (rand["随机日期"].str[:2].astype(int) > 12).any()
    labs = pd.read_csv(tmp_path / "检验结果.csv", dtype=str, keep_default_na=False)
    assert list(labs.columns) == ["受试者编号", "访视", "采样时间", "检验项目", "结果", "单位", "参考范围"]
    assert set(labs["访视"]) == {"基线", "第4周", "第12周", "第24周"}
    assert labs["采样时间"].str.match(r"^\d\d/\d\d/\d{4} \d\d:\d\d$").all()
    assert {"μmol/L", "mg/dL", "U/L"} <= set(labs["单位"])
    canonical = pd.read_csv(clean_dir / "labs.csv", dtype=str)
    assert len(labs) == canonical[[t.column for t in trial.lab_panel]].notna().sum().sum()
    for value in labs.loc[labs["单位"] == "mg/dL", "结果"]:
        assert str(float(value) * 17.1) in set(canonical["tbil"].astype(float).astype(str))


def test_exact_text_converts_back_exactly():
    assert se.exact_text("54.9", 17.1) == "3.2105263157894735"
    assert se.exact_text("171", 17.1) == "10"
    assert float(se.exact_text("64.6", 17.1)) * 17.1 == 64.6
    assert se.exact_text("ND", 17.1) is None


def test_the_sdtm_lb_file(clean_dir, trial, tmp_path):
    se.sdtm_lb_export(clean_dir, tmp_path, trial)
    lb = pd.read_csv(tmp_path / "lb.csv", dtype=str, keep_default_na=False)
    assert list(lb.columns) == ["STUDYID", "DOMAIN", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBORRES", "LBORRESU",
                                "VISIT", "LBDTC"]
    assert set(lb["LBTESTCD"]) == {"ALT", "AST", "ALP", "BILI", "ALB", "PT", "INR", "CREAT", "SODIUM"}
    assert set(lb["VISIT"]) == {"BASELINE", "WEEK 4", "WEEK 12", "WEEK 24"}
    assert lb["LBDTC"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d$").all()
    assert (lb.groupby("USUBJID")["LBSEQ"].first() == "1").all()
    assert not (tmp_path / "labs.csv").exists()


def test_sas_transport_reads_back_as_written(canonical, trial, tmp_path):
    """What the engine gets from the .xpt files (pyreadstat): names of at most 8 characters labelled with the
    contract's meaning; SAS dates as dates, numbers exactly as the canonical text's value (IBM floating point holds
    every double); an empty cell comes back as NaN in a numeric or date column and as "" in a text column (SAS has
    no empty text apart from a missing one); a column with a missing-value code or a limit stays text."""
    import datetime as dt

    import pyreadstat

    se.xpt_export(canonical, tmp_path, trial)
    labs, meta = pyreadstat.read_xport(str(tmp_path / "labs.xpt"))
    want = pd.read_csv(canonical / "labs.csv", dtype=str, keep_default_na=False)
    assert all(len(n) <= 8 for n in meta.column_names)
    assert meta.column_names_to_labels["TBIL"] == "Total bilirubin"
    assert isinstance(labs["LABDT"].iloc[0], dt.date)
    for test in trial.lab_panel:
        got, text = labs[test.column.upper()], want[test.column]
        if text.str.match(r"^[0-9.]*$").all():
            assert (got.isna() == (text == "")).all()
            assert (got[text != ""] == text[text != ""].astype(float)).all()
        else:
            assert list(got) == list(text)
    events, _ = pyreadstat.read_xport(str(tmp_path / "events.xpt"))
    ev = pd.read_csv(canonical / "events.csv", dtype=str, keep_default_na=False)
    assert (events["ENDDT"].isna() == (ev["end_date"] == "")).all()
    assert list(events["SERIOUS"]) == list(ev["serious"])  # "" where empty


# --- the whole book ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_chinese_export_builds_the_same_book(clean_dir, trial, tmp_path):
    """Data and results of the Chinese export, through its mapping, equal the canonical export's byte for byte
    (both folders are named alike: the data source's name is shown); provenance records the SHA-256 of every raw
    file and of the mapping, and the raw files are unchanged."""
    from helpers import pipeline

    canonical = tmp_path / "canonical" / "export"
    shutil.copytree(clean_dir, canonical)
    site = tmp_path / "site" / "export"
    mapping = se.chinese_export(clean_dir, site, trial)
    before = checksums(site)
    pipeline.run(data=str(canonical), build_dir=tmp_path / "canonical" / "_build", log=lambda *_: None)
    pipeline.run(data=str(site), mapping=str(mapping), build_dir=tmp_path / "site" / "_build", log=lambda *_: None)
    assert checksums(site) == before
    built = {p.name: p for p in (tmp_path / "site" / "_build" / "results").glob("*.csv")}
    expected = sorted((tmp_path / "canonical" / "_build" / "results").glob("*.csv"))
    assert expected and sorted(built) == [p.name for p in expected]
    for want in expected:
        assert built[want.name].read_bytes() == want.read_bytes(), f"results/{want.name} differs"
    record = json.loads((tmp_path / "site" / "_build" / "results" / "provenance.json").read_text(encoding="utf-8"))
    assert record["inputs"] == before
    assert record["export_mapping"]["sha256"] == hashlib.sha256(Path(mapping).read_bytes()).hexdigest()
