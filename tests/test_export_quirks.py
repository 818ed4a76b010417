"""Real-world export quirks: each is accepted with the right warning and the right numbers, or rejected
with a clear error naming file, row, column and rule. The base is the clean synthetic export."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers.data.adam import analysis_records, build_adam
from helpers.data.loading import ExportError, load_export, read_raw, validate_export
from helpers.trial import load_trial


@pytest.fixture(scope="module")
def clean_adam(clean_dir):
    trial = load_trial()
    return build_adam(load_export(clean_dir, trial), trial)


@pytest.fixture()
def folder(clean_dir, tmp_path):
    dest = tmp_path / "export"
    shutil.copytree(clean_dir, dest)
    return dest


def _raw(folder, name):
    return read_raw(folder / f"{name}.csv")


def _write(folder, name, df):
    df.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")


def _set(folder, name, row, column, value):
    """Set one cell (row as a spreadsheet numbers it: header = 1)."""
    df = _raw(folder, name)
    df.loc[row - 2, column] = value
    _write(folder, name, df)


def _findings(folder, trial=None):
    _, errors, warnings = validate_export(folder, trial or load_trial())
    return ({(p.file, p.row, p.column, p.rule) for p in errors},
            {(p.file, p.row, p.column, p.rule) for p in warnings})


def _adam(folder, trial=None):
    trial = trial or load_trial()
    return build_adam(load_export(folder, trial), trial)


def _same_analysis(adam, clean_adam):
    """The analysed records and the subject- and time-to-event data equal the clean export's."""
    cols = ["USUBJID", "PARAMCD", "AVISITN", "AVAL", "BASE", "CHG"]
    pd.testing.assert_frame_equal(analysis_records(adam["adlb"])[cols], analysis_records(clean_adam["adlb"])[cols])
    pd.testing.assert_frame_equal(adam["adsl"], clean_adam["adsl"])
    pd.testing.assert_frame_equal(adam["adtte"], clean_adam["adtte"])


def _adlb_row(adam, subject, paramcd, visit="Baseline"):
    adlb = adam["adlb"]
    rows = adlb[(adlb["USUBJID"].str.endswith(subject)) & (adlb["PARAMCD"] == paramcd) & (adlb["AVISIT"] == visit)]
    assert len(rows) == 1
    return rows.iloc[0]


def _subject_of(folder, name, row):
    return _raw(folder, name).loc[row - 2, "subject_id"]


def _row_of(adam, folder, name, row, paramcd):
    """The ADLB record of a raw row (same participant and visit)."""
    raw = _raw(folder, name).loc[row - 2]
    return _adlb_row(adam, raw["subject_id"], paramcd, load_trial().visit(raw["visit"]).label)


# --- accepted: missing values, with and without a reason -------------------------------------------

@pytest.mark.parametrize("cell, reason", [("", None), ("ND", "not done"), ("hemolyzed", "sample haemolysed"),
                                          (" QNS ", "quantity not sufficient"), ("na", "not available")])
def test_missing_lab_value_is_kept_with_its_reason_and_left_out_of_analysis(folder, cell, reason):
    _set(folder, "labs", 2, "alt", cell)
    errors, warnings = _findings(folder)
    assert errors == set() and warnings == set()
    adam = _adam(folder)
    row = _row_of(adam, folder, "labs", 2, "ALT")
    assert np.isnan(row["AVAL"]) and row["LBSTAT"] == "NOT DONE" and row["ANL01FL"] == ""
    assert (pd.isna(row["LBREASND"]) if reason is None else row["LBREASND"] == reason)


def test_missing_creatinine_makes_meld_missing_with_the_reason_not_imputed(folder):
    _set(folder, "labs", 2, "creat", "ND")
    adam = _adam(folder)
    for score in ("MELD", "MELDNA"):
        row = _row_of(adam, folder, "labs", 2, score)
        assert np.isnan(row["AVAL"]) and "creatinine" in row["LBREASND"]
    assert not np.isnan(_row_of(adam, folder, "labs", 2, "CPSCORE")["AVAL"])


def test_missing_ascites_grade_makes_child_pugh_missing(folder):
    _set(folder, "clinical", 2, "ascites", "NA")
    adam = _adam(folder)
    row = _row_of(adam, folder, "clinical", 2, "CPSCORE")
    assert np.isnan(row["AVAL"]) and "ascites" in row["LBREASND"]


def test_missing_sex_is_accepted_and_missing_in_adsl(folder):
    _set(folder, "screening", 2, "sex", "")
    assert _findings(folder) == (set(), set())
    load_export(folder, load_trial())


# --- accepted: censored results, unusual values, units ----------------------------------------------

@pytest.mark.parametrize("cell, value, sign", [("<5", 5.0, "<"), ("> 2000", 2000.0, ">"), ("<0.5", 0.5, "<")])
def test_result_beyond_a_limit_is_analysed_at_the_limit_and_flagged(folder, cell, value, sign):
    _set(folder, "labs", 2, "alp", cell)
    errors, _ = _findings(folder)
    assert errors == set()
    row = _row_of(_adam(folder), folder, "labs", 2, "ALP")
    assert row["AVAL"] == value and row["ACENSFL"] == sign and row["AVALC"] == cell.strip()


def test_unusual_but_possible_value_is_a_warning_not_an_error(folder):
    _set(folder, "labs", 3, "alp", "6000")
    errors, warnings = _findings(folder)
    assert errors == set()
    assert warnings == {("labs.csv", 3, "alp", "expected_range")}
    assert _row_of(_adam(folder), folder, "labs", 3, "ALP")["AVAL"] == 6000


def test_bilirubin_in_mg_dl_with_a_unit_column_is_converted(folder, clean_adam):
    labs = _raw(folder, "labs")
    expected = float(labs.loc[0, "tbil"])
    labs.insert(labs.columns.get_loc("tbil") + 1, "tbil_unit", "")
    labs.loc[0, ["tbil", "tbil_unit"]] = [f"{expected / 17.1:.6f}", "mg/dL"]
    _write(folder, "labs", labs)
    errors, warnings = _findings(folder)
    assert errors == set() and warnings == {("labs.csv", 2, "tbil", "unit_converted")}
    row = _row_of(_adam(folder), folder, "labs", 2, "TBIL")
    assert row["AVAL"] == pytest.approx(expected, abs=1e-4)


def test_unknown_unit_is_an_error(folder):
    labs = _raw(folder, "labs").assign(tbil_unit="")
    labs.loc[4, "tbil_unit"] = "mmol/L"
    _write(folder, "labs", labs)
    errors, _ = _findings(folder)
    assert errors == {("labs.csv", 6, "tbil_unit", "allowed")}


@pytest.mark.parametrize("cell", ["-3", "0.0001e9"])
def test_impossible_value_is_an_error(folder, cell):
    _set(folder, "labs", 4, "alp", cell)
    assert _findings(folder)[0] == {("labs.csv", 4, "alp", "impossible")}


# --- accepted: layout -------------------------------------------------------------------------------

def test_extra_column_is_a_warning_and_changes_no_number(folder, clean_adam):
    _write(folder, "labs", _raw(folder, "labs").assign(lab_comment="", site_code="X1"))
    errors, warnings = _findings(folder)
    assert errors == set()
    assert warnings == {("labs.csv", 1, "lab_comment", "extra_column"), ("labs.csv", 1, "site_code", "extra_column")}
    _same_analysis(_adam(folder), clean_adam)


def test_columns_in_another_order_change_nothing(folder, clean_adam):
    labs = _raw(folder, "labs")
    _write(folder, "labs", labs[list(reversed(labs.columns))])
    _same_analysis(_adam(folder), clean_adam)


def test_keys_with_stray_whitespace_are_the_same_participant(folder, clean_adam):
    labs = _raw(folder, "labs")
    labs["subject_id"] = labs["subject_id"] + " "
    _write(folder, "labs", labs)
    assert _findings(folder) == (set(), set())
    _same_analysis(_adam(folder), clean_adam)


def test_slash_dates_are_read_as_iso_dates(folder, clean_adam):
    labs = _raw(folder, "labs")
    labs["lab_date"] = labs["lab_date"].str.replace("-", "/")
    _write(folder, "labs", labs)
    _same_analysis(_adam(folder), clean_adam)


def test_xlsx_instead_of_csv_gives_the_same_numbers(folder, clean_adam):
    labs = _raw(folder, "labs")
    (folder / "labs.csv").unlink()
    labs.to_excel(folder / "labs.xlsx", index=False)
    _same_analysis(_adam(folder), clean_adam)


def test_crlf_line_ends_and_a_byte_order_mark_change_nothing(folder, clean_adam):
    text = (folder / "labs.csv").read_text(encoding="utf-8")
    (folder / "labs.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    _same_analysis(_adam(folder), clean_adam)


# --- accepted: unscheduled and repeated samples -----------------------------------------------------

def test_unscheduled_sample_outside_every_window_is_kept_not_analysed(folder, clean_adam):
    labs = _raw(folder, "labs")
    extra = labs.iloc[[0]].copy()
    base_date = pd.Timestamp(extra["lab_date"].iloc[0])
    extra["visit"], extra["lab_date"] = "UNSCHEDULED", (base_date + pd.Timedelta(days=55)).strftime("%Y-%m-%d")
    _write(folder, "labs", pd.concat([labs, extra], ignore_index=True))
    errors, warnings = _findings(folder)
    assert errors == set() and warnings == {("labs.csv", len(labs) + 2, "visit", "unscheduled_visit")}
    adam = _adam(folder)
    unscheduled = adam["adlb"][adam["adlb"]["AVISIT"] == "Unscheduled"]
    assert len(unscheduled) > 0 and (unscheduled["ANL01FL"] == "").all()
    _same_analysis(adam, clean_adam)


def test_repeated_sample_farther_from_target_is_kept_and_the_nearer_one_analysed(folder, clean_adam):
    labs = _raw(folder, "labs")
    week4 = labs[labs["visit"] == "WEEK4"].index[0]
    retest = labs.loc[[week4]].copy()
    retest["lab_date"] = (pd.Timestamp(retest["lab_date"].iloc[0]) + pd.Timedelta(days=6)).strftime("%Y-%m-%d")
    retest["alt"] = "999"
    _write(folder, "labs", pd.concat([labs, retest], ignore_index=True))
    errors, warnings = _findings(folder)
    assert ("labs.csv", len(labs) + 2, "visit", "repeated_visit") in warnings and errors == set()
    adam = _adam(folder)
    subject = labs.loc[week4, "subject_id"]
    alt = adam["adlb"][adam["adlb"]["USUBJID"].str.endswith(subject) & (adam["adlb"]["PARAMCD"] == "ALT")
                       & (adam["adlb"]["AVISIT"] == "Week 4")]
    assert len(alt) == 2 and alt.loc[alt["AVAL"] == 999, "ANL01FL"].item() == ""


# --- accepted: optional files and pieces ------------------------------------------------------------

def test_clinical_file_absent_is_accepted_and_child_pugh_is_missing(folder):
    (folder / "clinical.csv").unlink()
    errors, _ = _findings(folder)
    assert errors == set()
    adam = _adam(folder)
    cp = adam["adlb"][adam["adlb"]["PARAMCD"] == "CPSCORE"]
    assert cp["AVAL"].isna().all() and cp["LBREASND"].str.contains("ascites").all()


def test_empty_optional_file_counts_as_absent(folder):
    (folder / "clinical.csv").write_text("")
    assert _findings(folder)[0] == set()


def test_events_file_with_a_header_only_is_accepted_at_an_interim_and_an_error_in_a_final_analysis(folder):
    (folder / "events.csv").write_text((folder / "events.csv").read_text().splitlines()[0] + "\n")
    assert _findings(folder)[0] == {("events.csv", None, "event_type", "no_end_of_follow_up")}
    last = max(pd.to_datetime(_raw(folder, n)[c]).max() for n, c in (("labs", "lab_date"), ("clinical", "assessment_date")))
    trial = load_trial().with_cutoff(last.date())
    assert _findings(folder, trial) == (set(), {("events.csv", None, "event_type", "no_adverse_events")})
    adam = _adam(folder, trial)
    assert (adam["adsl"]["EOSSTT"] == "ONGOING").all() and adam["adtte"]["CNSR"].eq(1).all()


def test_age_given_directly_instead_of_a_birth_date(folder, clean_adam):
    scr = _raw(folder, "screening")
    trial = load_trial()
    ages = load_export(folder, trial)["screening"]["age"]
    _write(folder, "screening", scr.drop(columns="birth_date").assign(age=ages.astype(str).to_numpy()))
    assert _findings(folder)[0] == set()
    pd.testing.assert_series_equal(_adam(folder)["adsl"]["AGE"], clean_adam["adsl"]["AGE"])


def test_treatment_start_at_randomization_needs_no_infusion_file(folder, tmp_path):
    raw = yaml.safe_load(open(load_trial().source, encoding="utf-8"))
    raw["treatment"]["start"] = "randomization"
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    trial = load_trial(path)
    (folder / "dosing.csv").unlink()
    assert _findings(folder, trial)[0] == set()
    adsl = _adam(folder, trial)["adsl"]
    assert (adsl["TRTSDT"] == adsl["RANDDT"]).all() and (adsl["SAFFL"] == "Y").all()


def test_data_cutoff_leaves_later_records_out_and_censors_at_last_contact(folder):
    trial = load_trial().with_cutoff("2025-10-01")
    errors, warnings = _findings(folder, trial)
    assert errors == set() and {w[3] for w in warnings} == {"after_cutoff"}
    adam = _adam(folder, trial)
    cut = pd.Timestamp("2025-10-01")
    assert (adam["adsl"]["RANDDT"] <= cut).all() and (adam["adlb"]["ADT"] <= cut).all()
    ongoing = adam["adsl"]["EOSSTT"] == "ONGOING"
    assert ongoing.sum() > 0 and (adam["adsl"]["DCUTDT"] == cut).all()
    os_ = adam["adtte"][adam["adtte"]["PARAMCD"] == "OS"].set_index("USUBJID")
    ids = adam["adsl"].loc[ongoing, "USUBJID"]
    assert (os_.loc[ids, "CNSR"] == 1).all()
    assert set(os_.loc[ids, "EVNTDESC"]) <= {"ONGOING AT DATA CUT-OFF", "ALIVE AT HORIZON"}
    assert (os_.loc[ids, "ADT"] <= cut).all()


# --- rejected -----------------------------------------------------------------------------------

def test_duplicate_participant_differing_only_by_case_and_space_is_an_error(folder):
    rand = _raw(folder, "randomization")
    dup = rand.iloc[[0]].copy()
    dup["subject_id"] = " " + dup["subject_id"].str.lower() + " "
    _write(folder, "randomization", pd.concat([rand, dup], ignore_index=True))
    assert ("randomization.csv", len(rand) + 2, "subject_id", "unique_key") in _findings(folder)[0]


def test_both_csv_and_xlsx_of_one_table_is_an_error(folder):
    _raw(folder, "labs").to_excel(folder / "labs.xlsx", index=False)
    assert _findings(folder)[0] == {("labs.csv", None, None, "one_file_per_table")}


def test_infusion_file_absent_when_day_one_is_the_first_dose_is_an_error(folder):
    (folder / "dosing.csv").unlink()
    assert _findings(folder)[0] == {("dosing.csv", None, None, "missing_file")}


def test_empty_labs_file_is_an_error(folder):
    (folder / "labs.csv").write_text("")
    assert ("labs.csv", None, None, "missing_file") in _findings(folder)[0]


def test_adverse_event_ending_before_it_starts_is_an_error(folder):
    ev = _raw(folder, "events")
    i = ev.index[(ev["event_type"] == "AE") & (ev["end_date"] != "")][0]
    ev.loc[i, "end_date"] = (pd.Timestamp(ev.loc[i, "start_date"]) - pd.Timedelta(days=3)).strftime("%Y-%m-%d")
    _write(folder, "events", ev)
    assert _findings(folder)[0] == {("events.csv", i + 2, "end_date", "date_order")}


def test_empty_arm_is_an_error(folder):
    _set(folder, "randomization", 3, "arm", "")
    assert _findings(folder)[0] == {("randomization.csv", 3, "arm", "required")}


def test_missing_code_in_a_key_is_an_error(folder):
    _set(folder, "labs", 3, "subject_id", "")
    errors, _ = _findings(folder)
    assert ("labs.csv", 3, "subject_id", "required") in errors


def test_error_message_names_the_trial_file_and_summarizes_by_rule(folder):
    for row in range(2, 12):
        _set(folder, "labs", row, "alp", "-1")
    trial = load_trial()
    with pytest.raises(ExportError) as err:
        load_export(folder, trial)
    text = str(err.value)
    assert str(trial.source) in text and "error impossible: 10" in text


def test_a_name_in_a_free_text_field_is_an_error_whatever_its_case(folder):
    scr = _raw(folder, "screening")
    scr.loc[0, "name"] = "Zhang Xiaoming"
    _write(folder, "screening", scr)
    ev = _raw(folder, "events")
    i = ev.index[ev["event_type"] == "WITHDRAWAL"][0] if (ev["event_type"] == "WITHDRAWAL").any() else 0
    ev.loc[i, "term"] = "withdrew consent (ZHANG XIAOMING, via daughter)"
    _write(folder, "events", ev)
    errors, _ = _findings(folder)
    assert errors == {("events.csv", i + 2, "term", "identifier_in_text")}
    _, problems, _ = validate_export(folder, load_trial())
    assert "Zhang" not in problems[0].message and "screening.name" in problems[0].message


# --- issue 10: plausibility, parsing and keys --------------------------------------------------------

def _errors_rules(folder, trial=None):
    return {(f, r, c, rule) for f, r, c, rule in _findings(folder, trial)[0]}


def test_a_death_date_in_the_future_is_an_error(folder):
    ev = _raw(folder, "events")
    i = ev.index[ev["event_type"] == "DEATH"][0]
    ev.loc[i, "start_date"] = "2030" + ev.loc[i, "start_date"][4:]
    _write(folder, "events", ev)
    assert ("events.csv", i + 2, "start_date", "future_date") in _errors_rules(folder)


def test_an_adverse_event_after_death_is_an_error(folder):
    ev = _raw(folder, "events")
    d = ev[ev["event_type"] == "DEATH"].iloc[0]
    i = ev.index[(ev["subject_id"] == d["subject_id"]) & (ev["event_type"] == "AE")][0]
    ev.loc[i, "start_date"] = (pd.Timestamp(d["start_date"]) + pd.Timedelta(days=3)).strftime("%Y-%m-%d")
    ev.loc[i, "end_date"] = ""
    _write(folder, "events", ev)
    assert ("events.csv", i + 2, "start_date", "after_death") in _errors_rules(folder)


def test_a_birth_year_in_the_future_is_an_impossible_age(folder):
    _set(folder, "screening", 3, "birth_date", "2047-05-01")
    assert ("screening.csv", 3, "birth_date", "impossible") in _errors_rules(folder)


def test_one_person_randomized_twice_under_two_study_numbers_is_an_error(folder):
    scr, rand = _raw(folder, "screening"), _raw(folder, "randomization")
    first, second = (scr.index[scr["screening_id"] == s][0] for s in rand["screening_id"].iloc[:2])
    scr.loc[second, "id_number"] = scr.loc[first, "id_number"].lower()
    _write(folder, "screening", scr)
    errors = _errors_rules(folder)
    assert ("screening.csv", max(first, second) + 2, "id_number", "randomized_twice") in errors


def test_zero_padding_and_case_in_keys_join_the_right_participant(folder, clean_adam):
    labs = _raw(folder, "labs")
    labs["subject_id"] = labs["subject_id"].str.replace(r"^0?(\d+)-0*(\d+)$", r"\1-\2", regex=True)
    _write(folder, "labs", labs)
    assert _findings(folder) == (set(), set())
    _same_analysis(_adam(folder), clean_adam)


def test_event_numbers_that_differ_only_by_zero_padding_are_duplicates(folder):
    ev = _raw(folder, "events")
    dup = ev.iloc[[0]].copy()
    dup["event_id"] = "0" + dup["event_id"]
    _write(folder, "events", pd.concat([ev, dup], ignore_index=True))
    assert ("events.csv", len(ev) + 2, "subject_id,event_id", "unique_key") in _errors_rules(folder)


def test_a_multi_sheet_workbook_with_one_header_is_read_whole(folder, clean_adam):
    labs = _raw(folder, "labs")
    (folder / "labs.csv").unlink()
    with pd.ExcelWriter(folder / "labs.xlsx") as xl:
        labs.iloc[:60].to_excel(xl, sheet_name="Sheet1", index=False)
        labs.iloc[60:].to_excel(xl, sheet_name="Sheet2", index=False)
    errors, warnings = _findings(folder)
    assert errors == set() and ("labs.xlsx", None, None, "sheets_combined") in warnings
    _same_analysis(_adam(folder), clean_adam)


def test_sheets_with_different_headers_are_refused_naming_them(folder):
    labs = _raw(folder, "labs")
    (folder / "labs.csv").unlink()
    with pd.ExcelWriter(folder / "labs.xlsx") as xl:
        labs.to_excel(xl, sheet_name="Results", index=False)
        pd.DataFrame({"note": ["exported by LIS v2"], "n": [1]}).to_excel(xl, sheet_name="Info", index=False)
    _, errors, _ = validate_export(folder, load_trial())
    assert [(p.file, p.rule) for p in errors] == [("labs.xlsx", "sheets")] and "'Results', 'Info'" in errors[0].message


def test_a_title_row_above_the_header_names_the_sheet(folder):
    labs = _raw(folder, "labs")
    (folder / "labs.csv").unlink()
    with pd.ExcelWriter(folder / "labs.xlsx") as xl:
        pd.DataFrame([["Laboratory results, export of 2026-06-30"]]).to_excel(xl, sheet_name="Labs", index=False,
                                                                             header=False)
        labs.to_excel(xl, sheet_name="Labs", index=False, startrow=1)
    _, errors, _ = validate_export(folder, load_trial())
    assert [(p.file, p.row, p.rule) for p in errors] == [("labs.xlsx (sheet Labs)", 1, "header")]


def test_a_trailing_delimiter_on_every_row_is_read_with_a_warning(folder, clean_adam):
    text = (folder / "labs.csv").read_text()
    (folder / "labs.csv").write_text("".join(line + ",\n" for line in text.splitlines()))
    errors, warnings = _findings(folder)
    assert errors == set() and ("labs.csv", None, None, "trailing_delimiter") in warnings
    _same_analysis(_adam(folder), clean_adam)


def test_an_unquoted_decimal_comma_is_an_error_naming_the_row(folder):
    lines = (folder / "labs.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[4].split(",")
    cells[header.index("alb")] = cells[header.index("alb")].replace(".", ",") if "." in cells[header.index("alb")] \
        else cells[header.index("alb")] + ",5"
    lines[4] = ",".join(cells)
    (folder / "labs.csv").write_text("\n".join(lines) + "\n")
    assert _errors_rules(folder) == {("labs.csv", 5, None, "fields")}


def test_a_semicolon_delimited_file_is_recognised(folder):
    text = (folder / "randomization.csv").read_text()
    (folder / "randomization.csv").write_text(text.replace(",", ";"))
    assert _errors_rules(folder) == {("randomization.csv", 1, None, "delimiter")}


def test_a_gbk_encoded_file_names_the_row_and_the_likely_encoding(folder):
    ev = _raw(folder, "events")
    i = ev.index[ev["event_type"] == "AE"][3]
    ev.loc[i, "term"] = "腹痛"
    path = folder / "events.csv"
    ev.to_csv(path, index=False, lineterminator="\n", encoding="gb18030")
    _, errors, _ = validate_export(folder, load_trial())
    assert [(p.file, p.row, p.rule) for p in errors] == [("events.csv", i + 2, "encoding")]
    assert "GBK" in errors[0].message


def test_bilirubin_typed_in_mg_dl_without_a_unit_is_caught(folder):
    labs = _raw(folder, "labs")
    subject = labs["subject_id"].value_counts().index[0]
    i = labs.index[(labs["subject_id"] == subject) & (labs["visit"] == "WEEK24")][0]
    labs.loc[i, "tbil"] = f"{float(labs.loc[i, 'tbil']) / 17.1:.2f}"
    _write(folder, "labs", labs)
    _, errors, _ = validate_export(folder, load_trial())
    assert [(p.row, p.column, p.rule) for p in errors] == [(i + 2, "tbil", "unit_mixup")]
    assert "mg/dL" in errors[0].message and "17.1" in errors[0].message


def test_an_arm_without_participants_is_an_error(folder):
    rand = _raw(folder, "randomization")
    _write(folder, "randomization", rand.assign(arm=rand["arm"].iloc[0]))
    assert any(rule == "empty_arm" for *_, rule in _errors_rules(folder))


def test_labs_with_a_header_only_are_an_error_not_a_crash(folder):
    (folder / "labs.csv").write_text((folder / "labs.csv").read_text().splitlines()[0] + "\n")
    assert any(rule == "no_followup_data" for *_, rule in _errors_rules(folder))


def test_a_block_number_too_large_for_int64_is_a_type_error(folder):
    _set(folder, "randomization", 2, "block", "99999999999999999999999")
    assert _errors_rules(folder) == {("randomization.csv", 2, "block", "type")}


def test_a_death_before_randomization_is_an_error(folder):
    ev = _raw(folder, "events")
    d = ev.index[ev["event_type"] == "DEATH"][0]
    ev.loc[d, "start_date"] = "2024-01-01"
    _write(folder, "events", ev)
    assert ("events.csv", d + 2, "start_date", "date_order") in _errors_rules(folder)


# --- the command line on bad input: the exit code, the rule, never a traceback ---------------------

def _gbk(folder):
    ev = _raw(folder, "events")
    ev.loc[ev.index[ev["event_type"] == "AE"][0], "term"] = "腹痛"
    ev.to_csv(folder / "events.csv", index=False, encoding="gb18030")


CLI_CASES = {
    "clean": (lambda f: None, 0, None),
    "text in a number column": (lambda f: _set(f, "labs", 4, "alb", "high"), 1, "type"),
    "impossible bilirubin": (lambda f: _set(f, "labs", 4, "tbil", "-3"), 1, "impossible"),
    "unusual ALP": (lambda f: _set(f, "labs", 4, "alp", "4000"), 0, "expected_range"),
    "unknown arm": (lambda f: _set(f, "randomization", 3, "arm", "IV"), 1, "allowed"),
    "semicolons": (lambda f: (f / "screening.csv").write_text((f / "screening.csv").read_text().replace(",", ";")),
                   1, "delimiter"),
    "GBK text": (_gbk, 1, "encoding"),
    "header-only labs": (lambda f: (f / "labs.csv").write_text((f / "labs.csv").read_text().splitlines()[0] + "\n"),
                         1, "no_followup_data"),
    "empty events file": (lambda f: (f / "events.csv").write_text(""), 1, "missing_file"),
    "trailing delimiter": (lambda f: (f / "clinical.csv").write_text(
        "".join(line + ",\n" for line in (f / "clinical.csv").read_text().splitlines())), 0, "trailing_delimiter"),
    "extra column": (lambda f: _write(f, "events", _raw(f, "events").assign(site_note="")), 0, "extra_column"),
    "missing cell with a reason": (lambda f: _set(f, "labs", 5, "inr", "HEMOLYZED"), 0, None),
    "future randomization year": (lambda f: _set(f, "randomization", 2, "rand_date", "2052-08-01"), 1, "future_date"),
    "duplicate by case": (lambda f: _write(f, "randomization", pd.concat(
        [_raw(f, "randomization"), _raw(f, "randomization").iloc[[0]].assign(
            subject_id=lambda d: d["subject_id"].str.lower() + " ")], ignore_index=True)), 1, "unique_key"),
    "both CSV and XLSX": (lambda f: _raw(f, "clinical").to_excel(f / "clinical.xlsx", index=False), 1,
                          "one_file_per_table"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_the_validate_command_on_bad_input(folder, tmp_path, capsys, case):
    from helpers.__main__ import main

    corrupt, exit_code, rule = CLI_CASES[case]
    corrupt(folder)
    code = main(["validate", str(folder), "--report", str(tmp_path / "report")])
    out = capsys.readouterr()
    assert code == exit_code, out.err
    assert "Traceback" not in out.out + out.err
    found = pd.read_csv(tmp_path / "report" / "problems.csv")
    if rule is not None:
        assert rule in set(found["rule"]), found
    if exit_code == 0:
        assert not (found["severity"] == "error").any()


# --- held-out corpus: reading and parsing ----------------------------------------------------------

@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_a_hidden_sheet_is_named_and_left_out(folder, clean_adam, state):
    labs = _raw(folder, "labs")
    (folder / "labs.csv").unlink()
    draft = labs[labs["visit"] == "WEEK4"].head(5).assign(alt="999", alb="20.5")
    with pd.ExcelWriter(folder / "labs.xlsx") as xl:
        labs.to_excel(xl, sheet_name="Results", index=False)
        draft.to_excel(xl, sheet_name="draft", index=False)
        xl.book["draft"].sheet_state = state
    _, errors, warnings = validate_export(folder, load_trial())
    assert errors == [] and [(p.file, p.row, p.rule) for p in warnings] == [("labs.xlsx", None, "hidden_sheet")]
    assert "'draft'" in warnings[0].message
    _same_analysis(_adam(folder), clean_adam)


def _with_header_again(labs, at):
    """The table with its header repeated as the data row ``at`` (as a spreadsheet numbers it)."""
    header = pd.DataFrame([list(labs.columns)], columns=labs.columns)
    return pd.concat([labs.iloc[:at - 2], header, labs.iloc[at - 2:]], ignore_index=True)


@pytest.mark.parametrize("ext", ["csv", "xlsx"])
def test_a_repeated_header_row_is_one_error_naming_the_row(folder, ext):
    labs = _with_header_again(_raw(folder, "labs"), 41)
    (folder / "labs.csv").unlink()
    if ext == "csv":
        _write(folder, "labs", labs)
    else:
        labs.to_excel(folder / "labs.xlsx", index=False)
    _, errors, _ = validate_export(folder, load_trial())
    assert [(p.file, p.row, p.column, p.rule) for p in errors] == [(f"labs.{ext}", 41, None, "repeated_header")]
    assert "row 41 repeats the header: two exports concatenated?" in errors[0].message


def test_a_second_header_in_another_column_order_stops_the_file(folder):
    labs = _raw(folder, "labs")
    second = labs.iloc[39:][list(reversed(labs.columns))]
    text = labs.iloc[:39].to_csv(index=False, lineterminator="\n") + second.to_csv(index=False, lineterminator="\n")
    (folder / "labs.csv").write_text(text)
    _, errors, _ = validate_export(folder, load_trial())
    assert [(p.file, p.row, p.rule) for p in errors] == [("labs.csv", 41, "repeated_header")]


@pytest.mark.parametrize("cell", [">2000", "> 2000"])
def test_a_censored_result_outside_the_expected_range_is_shown_as_written(folder, cell):
    _set(folder, "labs", 3, "tbil", cell)
    _, errors, warnings = validate_export(folder, load_trial())
    assert errors == [] and [(p.row, p.column, p.rule) for p in warnings] == [(3, "tbil", "expected_range")]
    assert warnings[0].message.startswith(f"{cell} is outside the expected range")


def test_a_converted_value_outside_the_expected_range_shows_what_was_written(folder):
    labs = _raw(folder, "labs")
    labs.insert(labs.columns.get_loc("tbil") + 1, "tbil_unit", "")
    labs.loc[1, ["tbil", "tbil_unit"]] = ["60", "mg/dL"]
    _write(folder, "labs", labs)
    _, _, warnings = validate_export(folder, load_trial())
    [w] = [p for p in warnings if p.rule == "expected_range"]
    assert w.row == 3 and w.message.startswith("60 mg/dL (1026 umol/L) is outside")


@pytest.mark.parametrize("unit", ["\u00b5mol/L", "\u03bcmol/L", "umol/L", " \u00b5mol/L "])
def test_micromoles_are_accepted_with_either_mu(folder, clean_adam, unit):
    labs = _raw(folder, "labs")
    labs.insert(labs.columns.get_loc("tbil") + 1, "tbil_unit", unit)
    labs.insert(labs.columns.get_loc("creat") + 1, "creat_unit", unit)
    _write(folder, "labs", labs)
    assert _findings(folder) == (set(), set())
    _same_analysis(_adam(folder), clean_adam)


def test_a_trial_file_written_with_the_micro_sign_accepts_the_greek_mu(folder, tmp_path):
    raw = yaml.safe_load(open(load_trial().source, encoding="utf-8"))
    for t in raw["lab_panel"]:
        t["unit"] = t["unit"].replace("u", "\u00b5", 1) if t["unit"] == "umol/L" else t["unit"]
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    labs = _raw(folder, "labs").assign(tbil_unit="\u03bcmol/L")
    labs.loc[0, "tbil_unit"] = "umol/L"
    _write(folder, "labs", labs)
    assert _findings(folder, load_trial(path)) == (set(), set())


@pytest.mark.parametrize("form", ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S.%f",
                                  "%d/%m/%Y %H:%M", "%d/%m/%Y", "%m/%d/%Y %I:%M %p"])
def test_dates_with_a_time_of_day_are_read_as_their_date(folder, clean_adam, form):
    for name, col in (("labs", "lab_date"), ("randomization", "rand_date")):
        t = _raw(folder, name)
        t[col] = (pd.to_datetime(t[col]) + pd.Timedelta(hours=16, minutes=30)).dt.strftime(form)
        _write(folder, name, t)
    assert _findings(folder) == (set(), set())
    _same_analysis(_adam(folder), clean_adam)


@pytest.mark.parametrize("cells", ["datetime", "text"])
def test_excel_date_times_are_read_as_their_date(folder, clean_adam, cells):
    labs = _raw(folder, "labs")
    (folder / "labs.csv").unlink()
    when = pd.to_datetime(labs["lab_date"]) + pd.Timedelta(hours=8, minutes=30)
    labs["lab_date"] = when if cells == "datetime" else when.astype(str)
    labs.to_excel(folder / "labs.xlsx", index=False)
    assert _findings(folder) == (set(), set())
    _same_analysis(_adam(folder), clean_adam)


def test_day_and_month_that_cannot_be_told_apart_are_refused_saying_why(folder):
    rand = _raw(folder, "randomization")
    rand["rand_date"] = pd.to_datetime(rand["rand_date"]).map(lambda d: f"{min(d.day, 12):02d}/{d.month:02d}/{d.year}")
    _write(folder, "randomization", rand)
    _, errors, _ = validate_export(folder, load_trial())
    assert {(p.column, p.rule) for p in errors} == {("rand_date", "type")} and len(errors) == len(rand)
    assert "day and month" in errors[0].message and "YYYY-MM-DD" in errors[0].message


def test_an_unknown_missing_value_code_lists_the_accepted_ones(folder):
    _set(folder, "labs", 4, "alt", "NOT DONE")
    _, errors, _ = validate_export(folder, load_trial())
    assert [(p.row, p.column, p.rule) for p in errors] == [(4, "alt", "type")]
    for code in ("ND (not done)", "QNS (quantity not sufficient)", "HEMOLYZED", "<L", ">U"):
        assert code in errors[0].message


def test_a_bad_date_says_which_forms_are_accepted(folder):
    _set(folder, "randomization", 5, "rand_date", "Aug 13th")
    _, errors, _ = validate_export(folder, load_trial())
    assert [(p.row, p.column, p.rule) for p in errors] == [(5, "rand_date", "type")]
    assert "YYYY-MM-DD" in errors[0].message


def test_xlsx_rows_are_numbered_as_the_sheet_shows_them_across_blank_rows(folder):
    labs = _raw(folder, "labs")
    labs.loc[12, "alp"] = "-3"
    (folder / "labs.csv").unlink()
    blank = pd.DataFrame([[None] * labs.shape[1]], columns=labs.columns)
    pd.concat([labs.iloc[:9], blank, labs.iloc[9:]], ignore_index=True).to_excel(folder / "labs.xlsx", index=False)
    assert _findings(folder)[0] == {("labs.xlsx", 15, "alp", "impossible")}


def test_a_missing_value_code_in_a_unit_column_is_refused_not_a_value_lost(folder):
    labs = _raw(folder, "labs").assign(tbil_unit="")
    labs.loc[3, "tbil_unit"] = "NA"
    _write(folder, "labs", labs)
    _, errors, _ = validate_export(folder, load_trial())
    assert [(p.row, p.column, p.rule) for p in errors] == [(5, "tbil_unit", "allowed")]
    assert "umol/L, mg/dL" in errors[0].message
