"""map --suggest: a draft export mapping for a site's own files, every suggestion with its reason (issue 18, item 5)."""
from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
import yaml

from helpers import paths
from helpers.__main__ import main
from helpers.data.mapping_draft import (LONG_ROLES, date_format, draft_text, lab_names, name_key, panel_links,
                                        split_paren, suggest_mapping)
from helpers.trial import load_trial

SYNTHETIC = paths.ROOT / "data" / "synthetic"
KEYS = {"source", "sheet", "rename", "recode", "dates", "constants", "long", "tests"}
PANEL_ZH = {"alt": "丙氨酸氨基转移酶", "ast": "天门冬氨酸氨基转移酶", "alp": "碱性磷酸酶", "tbil": "总胆红素",
            "alb": "白蛋白", "pt": "凝血酶原时间", "inr": "国际标准化比值", "creat": "肌酐", "sodium": "钠"}
VISITS_ZH = {"BASELINE": "基线", "WEEK4": "第4周", "WEEK12": "第12周", "WEEK24": "第24周", "UNSCHEDULED": "计划外"}
ARMS_ZH = {"HA": "肝动脉", "PV": "外周静脉"}


@pytest.fixture(scope="module")
def trial():
    return load_trial("NCT06984497")


def _csv(name: str) -> pd.DataFrame:
    return pd.read_csv(SYNTHETIC / name, dtype=str, keep_default_na=False)


def _dmy(iso: pd.Series) -> pd.Series:
    return iso.map(lambda d: dt.date.fromisoformat(d).strftime("%d/%m/%Y") if d else "")


def _excel(iso: pd.Series) -> pd.Series:
    return iso.map(lambda d: (dt.date.fromisoformat(d) - dt.date(1899, 12, 30)).days)


def _chinese_export(folder, trial):
    """A site export as a Chinese hospital sends it, built from the synthetic export: Chinese headers, 是/否 flags,
    DD/MM/YYYY dates, Excel serial dates, Chinese arm names, a notes sheet, and long-format labs with a unit per row
    (some bilirubin in mg/dL), a test outside the panel and one nobody knows."""
    folder.mkdir()
    s = _csv("screening.csv")
    flags = [c.column for c in trial.eligibility]
    s[flags] = s[flags].replace({"Y": "是", "N": "否"})
    s["sex"] = s["sex"].map({"M": "男", "F": "女"})
    s["birth_date"], s["screening_date"] = _dmy(s["birth_date"]), _dmy(s["screening_date"])
    s["remark"] = ["复查" if i % 3 == 0 else "" for i in range(len(s))]
    s = s.rename(columns={"screening_id": "筛选号", "name": "姓名", "phone": "手机号", "id_number": "身份证号",
                          "birth_date": "出生日期", "age": "年龄", "sex": "性别", "screening_date": "筛选日期",
                          "etiology": "病因", "consent": "知情同意", "remark": "备注"})
    s.to_csv(folder / "筛选表.csv", index=False, encoding="utf-8")

    r = _csv("randomization.csv")
    r["rand_date"] = _excel(r["rand_date"])
    r["arm"] = r["arm"].map(ARMS_ZH)
    r = r.rename(columns={"subject_id": "受试者编号", "screening_id": "筛选号", "name": "姓名", "rand_date": "随机日期",
                          "block": "区组", "arm": "组别"})
    with pd.ExcelWriter(folder / "随机表.xlsx") as xw:
        r.to_excel(xw, sheet_name="随机", index=False)
        pd.DataFrame({"说明": ["随机表由统计师生成", "组别按区组随机"]}).to_excel(xw, sheet_name="说明", index=False)

    labs = _csv("labs.csv")
    long = labs.melt(id_vars=["subject_id", "visit", "lab_date"], value_vars=list(PANEL_ZH), var_name="test",
                     value_name="value")
    long = long[long["value"] != ""].reset_index(drop=True)
    units = {t.column: t.unit for t in trial.lab_panel}
    long["unit"] = long["test"].map(units)
    in_mg = (long["test"] == "tbil") & (long.index % 4 == 0)
    long.loc[in_mg, "value"] = (long.loc[in_mg, "value"].astype(float) / 17.1).round(3).astype(str)
    long.loc[in_mg, "unit"] = "mg/dL"
    long["test"] = long["test"].map(PANEL_ZH)
    extra = long.head(3).assign(test="γ-谷氨酰转移酶", value="40", unit="U/L")
    unknown = long.head(2).assign(test="血型", value="1", unit="")
    long = pd.concat([long, extra, unknown], ignore_index=True)
    long["visit"] = long["visit"].map(VISITS_ZH)
    long["lab_date"] = _dmy(long["lab_date"])
    long["range"] = "见报告"
    long = long.rename(columns={"subject_id": "受试者编号", "visit": "访视", "lab_date": "采样日期", "test": "检验项目",
                                "value": "结果", "unit": "单位", "range": "参考范围"})
    long.to_csv(folder / "检验结果.csv", index=False, encoding="utf-8")
    return folder


def _english_labs(folder, trial):
    """Wide labs in English with units in the headers (creatinine in mg/dL) and dates MM/DD/YYYY; arms by label."""
    folder.mkdir()
    labs = _csv("labs.csv")
    out = pd.DataFrame({"Subject ID": labs["subject_id"], "Visit": labs["visit"],
                        "Sample Date": labs["lab_date"].map(lambda d: dt.date.fromisoformat(d).strftime("%m/%d/%Y")),
                        "Total Bilirubin (umol/L)": labs["tbil"], "ALT (U/L)": labs["alt"],
                        "Creatinine (mg/dL)": labs["creat"], "Albumin": labs["alb"]})
    out.to_csv(folder / "lab_results.csv", index=False)
    r = _csv("randomization.csv")
    r["arm"] = r["arm"].map({a.code: a.label for a in trial.arms})
    r.rename(columns={"subject_id": "Subject ID", "rand_date": "Randomization Date", "arm": "Treatment Group"}) \
        .to_csv(folder / "random.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def chinese(tmp_path_factory, trial):
    folder = _chinese_export(tmp_path_factory.mktemp("site") / "site01", trial)
    draft = suggest_mapping(folder, trial)
    return draft, draft_text(draft)


@pytest.fixture(scope="module")
def english(tmp_path_factory, trial):
    folder = _english_labs(tmp_path_factory.mktemp("site") / "site02", trial)
    draft = suggest_mapping(folder, trial)
    return draft, draft_text(draft)


def _check_format(loaded: dict):
    """The structure of the mapping format (issue 18): files -> contract file -> its keys, every leaf a text."""
    assert set(loaded) == {"files"}
    for name, spec in loaded["files"].items():
        assert set(spec) <= KEYS, name
        assert isinstance(spec["source"], str)
        for key in ("rename", "dates", "constants", "long", "tests"):
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in (spec.get(key) or {}).items()), (name, key)
        for column, codes in (spec.get("recode") or {}).items():
            assert isinstance(codes, dict) and all(isinstance(v, str) for v in codes.values()), (name, column)
        assert set(spec.get("long") or {}) <= set(LONG_ROLES)


def test_the_draft_is_valid_yaml_in_the_mapping_format(chinese, english):
    for _, text in (chinese, english):
        _check_format(yaml.safe_load(text))


def test_every_suggestion_carries_its_reason(chinese, english):
    for _, text in (chinese, english):
        values = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
                  and not line.rstrip().endswith(":")]
        assert values
        assert all(re.search(r"\S   # \S", line) for line in values), [l for l in values if "   # " not in l]


def test_chinese_headers_flags_and_dates_of_the_screening_log(chinese):
    files = yaml.safe_load(chinese[1])["files"]
    s = files["screening"]
    assert s["source"] == "筛选表.csv"
    assert {"筛选号": "screening_id", "性别": "sex", "筛选日期": "screening_date", "出生日期": "birth_date",
            "知情同意": "consent", "姓名": "name", "手机号": "phone", "身份证号": "id_number", "年龄": "age",
            "病因": "etiology"}.items() <= s["rename"].items()
    assert s["recode"]["sex"] == {"男": "M", "女": "F"}
    assert s["recode"]["consent"] == {"是": "Y", "否": "N"}
    assert s["recode"]["tumour"] == {"是": "Y", "否": "N"}
    assert s["dates"] == {"birth_date": "%d/%m/%Y", "screening_date": "%d/%m/%Y"}
    assert re.search(r"筛选号: screening_id   # \"筛选号\" is a name of screening_id", chinese[1])
    assert re.search(r"screening_date: \"%d/%m/%Y\"   # .* above 12, so the day comes first", chinese[1])


def test_the_unmatched_column_is_listed_with_its_values(chinese):
    assert "# UNMATCHED: 备注 (values: 复查) - decide or leave out" in chinese[1]
    assert "备注" not in yaml.safe_load(chinese[1])["files"]["screening"]["rename"]


def test_randomization_sheet_excel_dates_and_chinese_arms(chinese, trial):
    text = chinese[1]
    r = yaml.safe_load(text)["files"]["randomization"]
    assert (r["source"], r["sheet"]) == ("随机表.xlsx", "随机")
    assert {"受试者编号": "subject_id", "随机日期": "rand_date", "组别": "arm", "区组": "block"}.items() <= r["rename"].items()
    assert r["dates"] == {"rand_date": "excel"}
    assert "arm" not in (r.get("recode") or {}), "Chinese arm names are not guessed"
    assert re.search(r"# UNMATCHED values of 组别 -> arm: 外周静脉 \(16 rows\), 肝动脉 \(16 rows\) - allowed: "
                     r"PV \(Peripheral vein\), HA \(Hepatic artery\)", text)
    assert re.search(r"# UNMATCHED FILE: 随机表.xlsx \(sheet 说明\) \(columns: 说明\)", text)


def test_long_labs_layout_tests_visits_and_units(chinese):
    text = chinese[1]
    labs = yaml.safe_load(text)["files"]["labs"]
    assert labs["source"] == "检验结果.csv"
    assert labs["long"] == {"subject_id": "受试者编号", "visit": "访视", "lab_date": "采样日期", "test": "检验项目",
                            "value": "结果", "unit": "单位"}
    assert labs["tests"] == {zh: column for column, zh in PANEL_ZH.items()}
    assert labs["recode"] == {"visit": {zh: code for code, zh in VISITS_ZH.items()}}
    assert labs["dates"] == {"lab_date": "%d/%m/%Y"}
    assert "# NOT IN THE PANEL (left out unless the trial file adds them): γ-谷氨酰转移酶 (GGT, LOINC 2324-2, 3 rows)" in text
    assert "# UNMATCHED test names: 血型 (2 rows)" in text
    assert "# UNMATCHED: 参考范围 (values: 见报告) - decide or leave out" in text
    assert "UNIT:" not in text, "mg/dL is an accepted unit of the panel's bilirubin"


def test_the_summary_counts_files_and_columns(chinese):
    summary = chinese[0].summary()
    assert "4 table(s) read, 3 proposed as contract files" in summary
    assert "screening <- 筛选表.csv: 22 column(s) matched, 1 unmatched" in summary
    assert "labs <- 检验结果.csv: 6 column(s) matched, 1 unmatched, 9 test name(s) mapped" in summary


def test_english_wide_labs_units_in_headers_and_month_first_dates(english):
    text = english[1]
    files = yaml.safe_load(text)["files"]
    labs = files["labs"]
    assert labs["rename"] == {"Subject ID": "subject_id", "Visit": "visit", "Sample Date": "lab_date",
                              "Total Bilirubin (umol/L)": "tbil", "ALT (U/L)": "alt", "Creatinine (mg/dL)": "creat",
                              "Albumin": "alb"}
    assert labs["dates"] == {"lab_date": "%m/%d/%Y"}
    assert labs["constants"] == {"creat_unit": "mg/dL"}
    assert re.search(r'Total Bilirubin \(umol/L\): tbil   # name matches the panel\'s label "Total bilirubin" of '
                     r"TBIL, with \(umol/L\) left out", text)
    assert files["randomization"]["recode"] == {"arm": {"Hepatic artery": "HA", "Peripheral vein": "PV"}}


def test_an_sdtm_lb_file_in_two_parts_is_one_long_labs_source(tmp_path, trial):
    folder = tmp_path / "sdtm"
    folder.mkdir()
    labs = _csv("labs.csv")
    codes = {"alt": ("ALT", "Alanine Aminotransferase"), "tbil": ("BILI", "Bilirubin"), "inr": ("INR", "INR"),
             "sodium": ("SODIUM", "Sodium")}
    units = {t.column: t.unit for t in trial.lab_panel}
    lb = pd.DataFrame([{"USUBJID": f"X-{r.subject_id}", "LBTESTCD": code, "LBTEST": name, "LBORRES": r[column],
                        "LBORRESU": units[column], "VISIT": r.visit.replace("WEEK", "WEEK "),
                        "LBDTC": f"{r.lab_date}T08:30"} for _, r in labs.iterrows()
                       for column, (code, name) in codes.items()])
    lb.iloc[:200].to_csv(folder / "lb_part1.csv", index=False)
    lb.iloc[200:].to_csv(folder / "lb_part2.csv", index=False)
    text = draft_text(suggest_mapping(folder, trial))
    files = yaml.safe_load(text)["files"]
    assert list(files) == ["labs"]
    labs = files["labs"]
    assert labs["source"] == "lb_part*.csv"
    assert labs["long"] == {"subject_id": "USUBJID", "visit": "VISIT", "lab_date": "LBDTC", "test": "LBTESTCD",
                            "value": "LBORRES", "unit": "LBORRESU"}
    assert labs["tests"] == {"ALT": "alt", "BILI": "tbil", "INR": "inr", "SODIUM": "sodium"}
    assert labs["recode"] == {"visit": {"WEEK 4": "WEEK4", "WEEK 12": "WEEK12", "WEEK 24": "WEEK24"}}
    assert labs["dates"] == {"lab_date": "%Y-%m-%dT%H:%M"}
    assert "2 files with these columns, stacked in name order: lb_part1.csv, lb_part2.csv" in text
    assert re.search(r"# UNMATCHED: LBTEST \(values: .*; looks like laboratory test names\)", text)


def test_sheets_with_one_header_are_one_table_without_a_sheet(tmp_path, trial):
    folder = tmp_path / "site"
    folder.mkdir()
    r = _csv("randomization.csv")
    with pd.ExcelWriter(folder / "rand.xlsx") as xw:
        r.iloc[:10].to_excel(xw, sheet_name="2025", index=False)
        r.iloc[10:].to_excel(xw, sheet_name="2026", index=False)
    text = draft_text(suggest_mapping(folder, trial))
    spec = yaml.safe_load(text)["files"]["randomization"]
    assert spec == {"source": "rand.xlsx"}
    assert "its 2 sheets have these columns and are read as one table, in order: sheet 2025, sheet 2026" in text
    assert "# rand_date: all 32 values are dates %Y-%m-%d, the contract's format: nothing to declare" in text


@pytest.mark.parametrize("values, fmt, sure", [
    (["13/08/2025", "02/09/2025"], "%d/%m/%Y", True),
    (["08/13/2025", "09/02/2025"], "%m/%d/%Y", True),
    (["03/04/2025", "05/06/2025"], "%d/%m/%Y", False),
    (["2025-08-13 08:30", "2025-09-02 14:05"], "%Y-%m-%d %H:%M", True),
    (["2025/8/13", "2025/9/2"], "%Y/%m/%d", True),
    (["2025年8月13日"], "%Y年%m月%d日", True),
    (["45884", "45900"], "excel", True),
    (["1.5", "2"], None, None),
    (["复查"], None, None),
])
def test_date_formats_are_told_by_the_values(values, fmt, sure):
    guess = date_format([(v, 1) for v in values])
    assert (guess.format, guess.sure) == (fmt, sure) if fmt else guess is None


def test_an_ambiguous_date_order_is_written_commented_out(tmp_path, trial):
    folder = tmp_path / "site"
    folder.mkdir()
    pd.DataFrame({"筛选号": ["S1", "S2"], "筛选日期": ["03/04/2025", "05/06/2025"], "性别": ["男", "女"]}) \
        .to_csv(folder / "s.csv", index=False)
    text = draft_text(suggest_mapping(folder, trial))
    assert re.search(r'    # screening_date: "%d/%m/%Y"   # .*no number above 12 tells day from month; CHECK', text)
    assert "dates" not in yaml.safe_load(text)["files"]["screening"]


def test_names_are_normalized_and_the_vocabulary_links_to_the_panel(trial):
    assert name_key("Screening_ID") == name_key(" screening id ") == "screeningid"
    assert split_paren("总胆红素（μmol/L）") == ("总胆红素", "μmol/L")
    links = panel_links(trial)
    for text, column in [("谷丙转氨酶", "alt"), ("天门冬氨酸氨基转移酶", "ast"), ("BILI", "tbil"), ("1975-2", "tbil"),
                         ("国际标准化比值", "inr"), ("CREAT", "creat"), ("SODIUM", "sodium"), ("Na", "sodium")]:
        assert links.find(text)[0].column == column, text
    assert links.find("GGT")[0] is None and links.find("GGT")[2].code == "GGT"
    codes = [e.code for e in lab_names()]
    assert len(codes) == len(set(codes)) and {"ALT", "AST", "ALP", "BILI", "ALB", "PT", "INR", "CREAT", "SODIUM",
                                              "WBC", "HGB", "PLAT", "ALBCREAT", "EGFR"} <= set(codes)


def test_the_cli_writes_the_draft_and_refuses_to_overwrite(tmp_path, trial, monkeypatch, capsys):
    folder = _english_labs(tmp_path / "site02", trial)
    out = tmp_path / "draft.yaml"
    assert main(["map", "--suggest", str(folder), "--trial", "NCT06984497", "--out", str(out)]) == 0
    first = out.read_text(encoding="utf-8")
    assert "labs <- lab_results.csv" in capsys.readouterr().out
    out.write_text("mine\n", encoding="utf-8")
    assert main(["map", "--suggest", str(folder), "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err and out.read_text(encoding="utf-8") == "mine\n"
    assert main(["map", "--suggest", str(folder), "--out", str(out), "--force"]) == 0
    assert out.read_text(encoding="utf-8") == first, "the draft is deterministic"
    monkeypatch.chdir(tmp_path)
    assert main(["map", "--suggest", str(folder)]) == 0
    assert (tmp_path / "site02.mapping.yaml").read_text(encoding="utf-8") == first


def test_the_mapping_engine_accepts_the_draft(tmp_path, chinese, english, trial):
    mapping = pytest.importorskip("helpers.data.mapping", reason="the mapping engine is not on this branch yet")
    for draft, text in (chinese, english):
        path = tmp_path / f"{draft.folder.name}.mapping.yaml"
        path.write_text(text, encoding="utf-8")
        assert set(mapping.load_mapping(path, trial).files) == set(yaml.safe_load(text)["files"])
