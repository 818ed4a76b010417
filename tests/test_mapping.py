"""The export mapping: its file is checked with messages naming the key, the site's files are read through it
without being changed, and every problem is named at the raw file's own row and column."""
from __future__ import annotations

import hashlib
import shutil
import textwrap

import pandas as pd
import pytest
from openpyxl import Workbook

from helpers.data.loading import validate_export, write_validation_report
from helpers.data.mapping import MappingError, effects_frame, load_mapping
from helpers.data.reading import read_raw

ARMS = {"HA": "肝动脉", "PV": "外周静脉"}
RANDOMIZATION = """
  randomization:
    source: 随机*.csv
    rename: {受试者编号: subject_id, 筛选号: screening_id, 随机日期: rand_date, 组别: arm}
    recode: {arm: {肝动脉: HA, 外周静脉: PV}}
    dates: {rand_date: "%d/%m/%Y"}
"""
LABS = """
  labs:
    source: 检验.csv
    long: {subject_id: 受试者编号, visit: 访视, lab_date: 采样日期, test: 项目, value: 结果, unit: 单位}
    tests: {丙氨酸氨基转移酶: alt, ALT: alt, 天门冬氨酸氨基转移酶: ast, 碱性磷酸酶: alp, 总胆红素: tbil, 白蛋白: alb,
            凝血酶原时间: pt, INR: inr, 肌酐: creat, 钠: sodium}
"""


def _mapping(folder, text: str):
    path = folder / "site.mapping.yaml"
    body = textwrap.indent(textwrap.dedent(text).strip("\n"), "  ")
    path.write_text(f"files:\n{body}\n", encoding="utf-8")
    return path


def _randomization(clean_dir) -> pd.DataFrame:
    r = pd.read_csv(clean_dir / "randomization.csv", dtype=str, keep_default_na=False)
    r["rand_date"] = pd.to_datetime(r["rand_date"]).dt.strftime("%d/%m/%Y")
    r["arm"] = r["arm"].map(ARMS)
    return r.rename(columns={"subject_id": "受试者编号", "screening_id": "筛选号", "rand_date": "随机日期", "arm": "组别"})


def _long_labs(clean_dir, trial) -> pd.DataFrame:
    labs = pd.read_csv(clean_dir / "labs.csv", dtype=str, keep_default_na=False)
    names = {"alt": "丙氨酸氨基转移酶", "ast": "天门冬氨酸氨基转移酶", "alp": "碱性磷酸酶", "tbil": "总胆红素", "alb": "白蛋白",
             "pt": "凝血酶原时间", "inr": "INR", "creat": "肌酐", "sodium": "钠"}
    long = (labs.reset_index()
            .melt(id_vars=["index", "subject_id", "visit", "lab_date"], value_vars=list(names), var_name="test",
                  value_name="value")
            .sort_values("index", kind="stable"))
    long = long[long["value"] != ""]
    long["unit"] = long["test"].map({t.column: t.unit for t in trial.lab_panel})
    long["test"] = long["test"].map(names)
    return long.drop(columns="index").rename(columns={"subject_id": "受试者编号", "visit": "访视", "lab_date": "采样日期",
                                                      "test": "项目", "value": "结果", "unit": "单位"})


@pytest.fixture
def site(clean_dir, trial, tmp_path):
    """The clean export with the randomization log in Chinese (DD/MM/YYYY, arms named) and the labs long."""
    folder = tmp_path / "site"
    shutil.copytree(clean_dir, folder)
    (folder / "randomization.csv").unlink()
    (folder / "labs.csv").unlink()
    _randomization(clean_dir).to_csv(folder / "随机.csv", index=False)
    _long_labs(clean_dir, trial).to_csv(folder / "检验.csv", index=False)
    return folder


def _write(df: pd.DataFrame, path):
    df.to_csv(path, index=False)


def _errors(folder, trial, mapping):
    return validate_export(folder, trial, mapping=mapping)[1]


# --- the mapping file ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("\n  labz: {source: a.csv}\n", "files.labz: unknown contract file (known: screening, randomization"),
    ("\n  randomization: {source: a.csv, renames: {}}\n", "files.randomization: unknown key(s) renames"),
    ("\n  randomization: {rename: {a: arm}}\n", "files.randomization.source is missing"),
    ("\n  randomization: {source: a.csv, rename: {组别: group}}\n",
     "files.randomization.rename: 组别 -> group: unknown column group (columns of randomization: subject_id"),
    ("\n  randomization: {source: a.csv, rename: {组别: arm, 分组: arm}}\n",
     "files.randomization: two sources for column arm: rename 组别; rename 分组"),
    ("\n  randomization: {source: a.csv, rename: {组别: arm}, constants: {arm: HA}}\n",
     "files.randomization: two sources for column arm: rename 组别; constants"),
    ("\n  randomization: {source: a.csv, recode: {group: {a: b}}}\n", "files.randomization.recode: unknown column group"),
    ("\n  randomization: {source: a.csv, dates: {rand_date: '%Y'}}\n",
     "files.randomization.dates.rand_date: '%Y' is not a date format: it needs a day (%d), a month"),
    ("\n  randomization: {source: a.csv, dates: {arm: '%d/%m/%Y'}}\n",
     "files.randomization.dates.arm: arm is a category column, not a date"),
    ("\n  randomization: {source: a.csv, long: {subject_id: a}}\n", "files.randomization.long: only labs may be"),
    ("\n  labs: {source: a.csv, tests: {ALT: alt}}\n", "files.labs.tests: test names are mapped only for labs exported"),
    ("\n  labs: {source: a.csv, long: {subject_id: a, visit: b, lab_date: c, test: d}, tests: {ALT: alt}}\n",
     "files.labs.long.value is missing: the column that holds the value"),
    ("\n  labs: {source: a.csv, long: {subject_id: a, visit: b, lab_date: c, test: d, value: e}, tests: {ALT: alt, "
     "'alt ': ast}}\n", "files.labs.tests: 'alt' is mapped twice (alt, ast)"),
    ("\n  labs: {source: a.csv, long: {subject_id: a, visit: b, lab_date: c, test: d, value: e}, tests: {GGT: ggt}}\n",
     "files.labs.tests: 'GGT' -> 'ggt': 'ggt' is not a test of the lab panel"),
    ("\n  labs:\n    source: a.csv\n    long: {subject_id: a, visit: b, lab_date: c, test: d, value: e}\n"
     "    tests:\n      ALT: alt\n      ALT: ast\n", "key 'ALT' appears twice (lines 6 and 7)"),
])
def test_a_wrong_mapping_is_refused_naming_the_key(tmp_path, trial, text, message):
    with pytest.raises(MappingError) as caught:
        load_mapping(_mapping(tmp_path, text), trial)
    assert message in str(caught.value)
    assert str(tmp_path / "site.mapping.yaml") in str(caught.value)


def test_every_problem_of_a_mapping_is_listed_at_once(tmp_path, trial):
    text = "\n  randomization: {source: a.csv, rename: {组别: group}, dates: {rand_date: '%Y'}}\n  labz: {source: b}\n"
    with pytest.raises(MappingError) as caught:
        load_mapping(_mapping(tmp_path, text), trial)
    assert len(caught.value.problems) == 3


def test_a_panel_test_may_be_named_by_its_code(tmp_path, trial):
    text = "\n  labs: {source: a.csv, long: {subject_id: a, visit: b, lab_date: c, test: d, value: e}, tests: {X1: TBIL}}\n"
    assert load_mapping(_mapping(tmp_path, text), trial).files["labs"].tests == {"x1": "tbil"}


# --- reading through it ----------------------------------------------------------------------------

def _tables_equal(a: pd.DataFrame, b: pd.DataFrame):
    shared = [c for c in a.columns if c in b.columns and not c.endswith("_unit")]
    pd.testing.assert_frame_equal(a[shared].reset_index(drop=True), b[shared].reset_index(drop=True))


def test_the_site_files_give_the_canonical_tables_and_are_not_changed(site, clean_dir, trial):
    mapping = _mapping(site, RANDOMIZATION + LABS)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in site.iterdir()}
    effects = []
    tables, errors, warnings = validate_export(site, trial, mapping=mapping, effects=effects)
    canonical, _, canonical_warnings = validate_export(clean_dir, trial)
    assert errors == []
    for name in canonical:
        _tables_equal(canonical[name], tables[name])
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in site.iterdir()} == before
    done = effects_frame(effects)
    recoded = done[done["action"] == "recoded"].set_index("detail")["count"]
    assert recoded.to_dict() == {"外周静脉 -> PV": 16, "肝动脉 -> HA": 16}
    assert done[(done["action"] == "dates parsed")]["count"].tolist() == [32]
    pivoted = done[done["action"] == "pivoted"].iloc[0]
    long_rows = len(pd.read_csv(site / "检验.csv"))
    assert pivoted["count"] == long_rows and f"-> {len(canonical['labs'])} samples" in pivoted["detail"]
    units = done[done["action"] == "unit"]
    assert units["count"].sum() == long_rows


def test_a_value_wrong_after_mapping_is_named_at_the_raw_row_and_column(site, trial):
    r = pd.read_csv(site / "随机.csv", dtype=str, keep_default_na=False)
    r.loc[4, "组别"] = "其他"
    r.loc[6, "随机日期"] = "2025-13-45"
    _write(r, site / "随机.csv")
    errors = _errors(site, trial, _mapping(site, RANDOMIZATION + LABS))
    shown = {(p.file, p.row, p.column, p.rule) for p in errors}
    assert ("随机.csv", 6, "组别", "allowed") in shown
    assert ("随机.csv", 8, "随机日期", "mapping_date") in shown
    arm = next(p for p in errors if p.rule == "allowed")
    assert arm.message.endswith("; the export mapping recodes 肝动脉 -> HA, 外周静脉 -> PV")
    date = next(p for p in errors if p.rule == "mapping_date")
    assert date.message == "'2025-13-45' is not a date written %d/%m/%Y (the mapping's format for rand_date)"
    assert not any(p.rule == "type" and p.row == 8 for p in errors), "a cell is reported once"


def test_long_lab_problems_are_named_at_the_result_row(site, trial):
    long = pd.read_csv(site / "检验.csv", dtype=str, keep_default_na=False)
    tbil = long.index[long["项目"] == "总胆红素"]
    alt = long.index[long["项目"] == "丙氨酸氨基转移酶"]
    long.loc[tbil[2], "结果"] = "99999"
    long.loc[tbil[3], "单位"] = "mmol/L"
    long.loc[alt[1], "单位"] = "IU/mL"
    long.loc[alt[4], "项目"] = "乙肝表面抗原"
    duplicate = long.loc[[alt[5]]]
    long = pd.concat([long, duplicate], ignore_index=True)
    _write(long, site / "检验.csv")
    tables, errors, warnings = validate_export(site, trial, mapping=_mapping(site, RANDOMIZATION + LABS))
    shown = {(p.file, p.row, p.column, p.rule) for p in errors}
    assert ("检验.csv", tbil[2] + 2, "结果", "impossible") in shown
    assert ("检验.csv", tbil[3] + 2, "单位", "allowed") in shown
    assert ("检验.csv", alt[1] + 2, "单位", "allowed") in shown
    assert ("检验.csv", len(long) + 1, "项目", "mapping_duplicate_result") in shown
    unmapped = [p for p in warnings if p.rule == "unmapped_test"]
    assert [(p.row, p.column) for p in unmapped] == [(alt[4] + 2, "项目")]
    assert "test '乙肝表面抗原' is not in the mapping: 1 row(s) left out" in unmapped[0].message


def test_a_converted_unit_on_a_long_row(site, clean_dir, trial):
    long = pd.read_csv(site / "检验.csv", dtype=str, keep_default_na=False)
    row = long.index[(long["项目"] == "总胆红素") & (long["结果"] == "34.2")]
    row = row[0] if len(row) else long.index[long["项目"] == "总胆红素"][0]
    value = float(long.at[row, "结果"])
    long.loc[row, ["结果", "单位"]] = [repr(value / 17.1), "mg/dL"]
    _write(long, site / "检验.csv")
    tables, errors, warnings = validate_export(site, trial, mapping=_mapping(site, RANDOMIZATION + LABS))
    assert errors == []
    converted = [p for p in warnings if p.rule == "unit_converted"]
    assert [(p.file, p.row, p.column) for p in converted] == [("检验.csv", row + 2, "结果")]
    assert tables["labs"]["tbil"].sub(validate_export(clean_dir, trial)[0]["labs"]["tbil"]).abs().max() < 1e-9


def test_a_missing_source_file_or_column(site, trial):
    (site / "随机.csv").rename(site / "rand.csv")
    errors = _errors(site, trial, _mapping(site, RANDOMIZATION + LABS))
    assert any(p.rule == "missing_file" and "随机*.csv" in p.message for p in errors)
    (site / "rand.csv").rename(site / "随机.csv")
    r = pd.read_csv(site / "随机.csv", dtype=str, keep_default_na=False).rename(columns={"组别": "分组"})
    _write(r, site / "随机.csv")
    errors = _errors(site, trial, _mapping(site, RANDOMIZATION + LABS))
    missing = next(p for p in errors if p.rule == "mapping_column")
    assert (missing.file, missing.row, missing.column) == ("随机.csv", 1, "组别")
    assert "column '组别' named in the mapping is not in the file" in missing.message


def test_several_files_of_one_pattern_are_stacked_and_named(site, trial):
    r = pd.read_csv(site / "随机.csv", dtype=str, keep_default_na=False)
    (site / "随机.csv").unlink()
    r.iloc[:20].to_csv(site / "随机_1.csv", index=False)
    late = r.iloc[20:].copy()
    late.iloc[3, late.columns.get_loc("组别")] = "其他"
    late.to_csv(site / "随机_2.csv", index=False)
    errors = _errors(site, trial, _mapping(site, RANDOMIZATION + LABS))
    assert [(p.file, p.row, p.column) for p in errors] == [("随机_2.csv", 5, "组别")]


def test_excel_serial_dates_date_times_and_a_chosen_sheet(site, trial, clean_dir):
    r = _randomization(clean_dir)
    serial = (pd.to_datetime(r["随机日期"], format="%d/%m/%Y") - pd.Timestamp("1899-12-30")).dt.days
    book = Workbook()
    notes = book.active
    notes.title = "说明"
    notes.append(["本表由医院信息系统导出"])
    data = book.create_sheet("随机")
    data.append(list(r.columns))
    for values, days in zip(r.itertuples(index=False), serial):
        row = list(values)
        row[list(r.columns).index("随机日期")] = days + 0.375
        data.append(row)
    (site / "随机.csv").unlink()
    book.save(site / "随机.xlsx")
    text = RANDOMIZATION.replace("随机*.csv", "随机.xlsx\n    sheet: 随机").replace('"%d/%m/%Y"', "excel")
    effects = []
    tables, errors, _ = validate_export(site, trial, mapping=_mapping(site, text + LABS), effects=effects)
    assert errors == []
    assert any(e.detail == "sheet 说明 (the mapping reads sheet 随机)" for e in effects)
    expected = validate_export(clean_dir, trial)[0]["randomization"]["rand_date"]
    assert tables["randomization"]["rand_date"].reset_index(drop=True).equals(expected.reset_index(drop=True))
    errors = _errors(site, trial, _mapping(site, text.replace("sheet: 随机", "sheet: Sheet9") + LABS))
    assert [(p.file, p.rule) for p in errors] == [("随机.xlsx", "sheet_not_found")]
    assert "the workbook has no sheet 'Sheet9' (its sheets: '说明', '随机')" in errors[0].message


def test_a_date_time_format(site, trial, clean_dir):
    r = pd.read_csv(site / "随机.csv", dtype=str, keep_default_na=False)
    r["随机日期"] = r["随机日期"] + " 14:30"
    _write(r, site / "随机.csv")
    text = RANDOMIZATION.replace('"%d/%m/%Y"', '"%d/%m/%Y %H:%M"')
    tables, errors, _ = validate_export(site, trial, mapping=_mapping(site, text + LABS))
    assert errors == []


@pytest.mark.parametrize("suffix", [".xpt", ".sav"])
def test_sas_and_spss_files_are_read_with_their_labels(clean_dir, trial, tmp_path, suffix):
    import pyreadstat

    r = pd.read_csv(clean_dir / "randomization.csv", dtype=str, keep_default_na=False)
    frame = pd.DataFrame({"SUBJID": r["subject_id"], "SCRID": r["screening_id"],
                          "RANDDT": pd.to_datetime(r["rand_date"]).dt.date, "BLOCK": r["block"].astype(float),
                          "ARM": r["arm"]})
    folder = tmp_path / "sas"
    shutil.copytree(clean_dir, folder)
    (folder / "randomization.csv").unlink()
    labels = ["Study number", "Screening number", "Date of randomization", "Block", "Arm allocated"]
    writer = pyreadstat.write_xport if suffix == ".xpt" else pyreadstat.write_sav
    writer(frame, str(folder / f"rand{suffix}"), column_labels=labels)
    raw = read_raw(folder / f"rand{suffix}")
    assert raw.attrs["labels"]["RANDDT"] == "Date of randomization"
    assert raw["RANDDT"].iloc[0] == r["rand_date"].iloc[0] and raw["BLOCK"].iloc[0] == r["block"].iloc[0]
    text = f"""
      randomization:
        source: rand{suffix}
        rename: {{Study number: subject_id, SCRID: screening_id, Date of randomization: rand_date, BLOCK: block, ARM: arm}}
    """
    tables, errors, _ = validate_export(folder, trial, mapping=_mapping(folder, text))
    assert errors == []
    columns = ["subject_id", "screening_id", "rand_date", "block", "arm"]
    _tables_equal(validate_export(clean_dir, trial)[0]["randomization"][columns], tables["randomization"][columns])


def test_a_file_in_sas_format_is_found_without_a_mapping(clean_dir, trial, tmp_path):
    import pyreadstat

    folder = tmp_path / "mixed"
    shutil.copytree(clean_dir, folder)
    events = pd.read_csv(folder / "events.csv", dtype=str, keep_default_na=False)
    pyreadstat.write_sav(events, str(folder / "events.sav"))
    (folder / "events.csv").unlink()
    tables, errors, _ = validate_export(folder, trial)
    assert errors == []
    _tables_equal(validate_export(clean_dir, trial)[0]["events"], tables["events"])


def test_the_report_lists_what_the_mapping_did(site, trial, tmp_path):
    effects = []
    _, errors, warnings = validate_export(site, trial, mapping=_mapping(site, RANDOMIZATION + LABS), effects=effects)
    written = write_validation_report(errors, warnings, tmp_path / "report", effects)
    assert [p.name for p in written] == ["problems.csv", "summary.csv", "mapping.csv"]
    report = pd.read_csv(tmp_path / "report" / "mapping.csv")
    assert set(report["action"]) == {"read", "recoded", "dates parsed", "renamed", "unit", "pivoted"}
    assert report.loc[report["action"] == "renamed", "column"].tolist() == ["受试者编号", "筛选号", "随机日期", "组别"]


def test_the_trial_file_may_name_the_mapping_and_a_build_may_override_it(tmp_path, trial):
    source = trial.source.read_text(encoding="utf-8")
    copy = tmp_path / "T.yaml"
    copy.write_text(source + "\nexport_mapping: maps/site.yaml\n", encoding="utf-8")
    from helpers.trial import load_trial

    named = load_trial(copy)
    assert named.export_mapping == tmp_path / "maps" / "site.yaml"
    assert named.with_mapping("none").export_mapping is None
    assert named.with_mapping(tmp_path / "other.yaml").export_mapping == tmp_path / "other.yaml"
    assert named.with_mapping(None) is named


def test_provenance_and_freshness_know_the_mapping(site, trial, tmp_path):
    from helpers import freshness, provenance
    from helpers.pipeline import validation_markdown

    mapping_path = _mapping(site, RANDOMIZATION + LABS)
    mapping = load_mapping(mapping_path, trial)
    inputs = freshness.export_files(site)
    assert {"随机.csv", "检验.csv", "site.mapping.yaml"} <= set(inputs)
    record = provenance.collect(trial.with_mapping(mapping_path), inputs, {}, "site export", mapping)
    assert record["export_mapping"]["sha256"] == hashlib.sha256(mapping_path.read_bytes()).hexdigest()
    assert f"SHA-256 `{mapping.sha256}`" in provenance.markdown(record)
    before = freshness.data_inputs(str(site), trial.source, str(mapping_path))
    mapping_path.write_text(mapping_path.read_text(encoding="utf-8") + "\n# reviewed\n", encoding="utf-8")
    after = freshness.data_inputs(str(site), trial.source, str(mapping_path))
    assert before["export mapping"] != after["export mapping"]
    assert "export mapping" not in freshness.data_inputs("synthetic", trial.source, str(mapping_path))
    effects = []
    _, errors, warnings = validate_export(site, trial, mapping=mapping, effects=effects)
    page = validation_markdown(errors, warnings, trial.with_mapping(mapping_path), "site export", effects)
    assert "## What the export mapping did" in page and "| randomization | 随机.csv | recoded | 组别 | 肝动脉 -> HA | 16 |" in page


def test_the_privacy_scan_knows_the_names_the_site_wrote(site, trial):
    from helpers.chapter import read_data
    from helpers.data.privacy import name_key

    r = pd.read_csv(site / "随机.csv", dtype=str, keep_default_na=False).rename(columns={"name": "姓名"})
    r.loc[0, "姓名"] = "欧阳娜娜"
    _write(r, site / "随机.csv")
    mapping = _mapping(site, RANDOMIZATION.replace("组别: arm}", "组别: arm, 姓名: name}") + LABS)
    read = read_data(str(site), trial.with_mapping(mapping), None)
    assert read.errors == [] and read.mapping.path == mapping
    assert read.identifiers.names[name_key("欧阳娜娜")] == "randomization.name", "known only from the mapped file"


def test_the_command_line_validates_through_a_mapping(site, trial, tmp_path, capsys):
    from helpers.__main__ import main

    good = _mapping(site, RANDOMIZATION + LABS)
    assert main(["validate", str(site), "--mapping", str(good), "--report", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert "read through the export mapping" in out and (tmp_path / "v" / "mapping.csv").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("files:\n  randomization: {source: a.csv, rename: {组别: group}}\n", encoding="utf-8")
    assert main(["validate", str(site), "--mapping", str(bad), "--report", str(tmp_path / "v")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: 1 problem(s) in the export mapping") and "Traceback" not in err


def test_a_row_named_in_a_message_is_the_raw_files_row(site, trial):
    r = pd.read_csv(site / "随机.csv", dtype=str, keep_default_na=False)
    (site / "随机.csv").unlink()
    r.iloc[:20].to_csv(site / "随机_1.csv", index=False)
    late = r.iloc[20:].copy()
    late.iloc[1, late.columns.get_loc("筛选号")] = r.at[2, "筛选号"]
    late.to_csv(site / "随机_2.csv", index=False)
    errors = _errors(site, trial, _mapping(site, RANDOMIZATION + LABS))
    twice = next(p for p in errors if p.rule == "randomized_twice")
    assert (twice.file, twice.row, twice.column) == ("随机_2.csv", 3, "筛选号")
    assert f"was randomized on row 4 of 随机_1.csv ({r.at[2, '受试者编号']})" in twice.message


def test_a_blinded_report_does_not_show_the_sites_arm_names(site, trial):
    from helpers.data.blinding import mask_effects

    effects = []
    validate_export(site, trial, mapping=_mapping(site, RANDOMIZATION + LABS), effects=effects)
    shown = effects_frame(mask_effects(effects, trial.blinded("key")))
    assert not shown["detail"].str.contains("肝动脉|外周静脉").any()
    assert (shown["action"] == "recoded").sum() == 2 and shown["count"].sum() == effects_frame(effects)["count"].sum()
