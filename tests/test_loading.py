"""The loader: a good export loads, a broken one fails naming file, row, column and rule."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from helpers import paths
from helpers.data.loading import ExportError, age_at, load_export, read_raw, validate_export
from helpers.data.schema import export_spec


def _edit(folder, name, row, column, value):
    """Set one cell of a raw file (row as a spreadsheet numbers it: header = 1)."""
    path = folder / f"{name}.csv"
    df = read_raw(path)
    df.loc[row - 2, column] = value
    df.to_csv(path, index=False, lineterminator="\n")


def _problems(folder, trial):
    _, problems, _ = validate_export(folder, trial)
    return problems


def test_intact_export_loads_without_problems(export_copy, trial):
    tables, problems, _ = validate_export(export_copy, trial)
    assert problems == []
    assert set(tables) == set(export_spec(trial))


def test_identifiers_are_dropped_on_load(export, trial):
    schema = export_spec(trial)
    for name, table in export.tables.items():
        assert not set(schema[name].identifiers) & set(table.columns), name
    assert "age" in export["screening"] and export["screening"]["age"].notna().all()


@pytest.mark.parametrize("name, row, column, value, rule, text", [
    ("labs", 6, "alt", "abc", "type", "'abc' is not a valid number"),
    ("labs", 7, "alb", "500", "impossible", "500 is outside the possible range [1, 80] g/L"),
    ("screening", 3, "sex", "X", "allowed", "'X' is not one of {F, M}"),
    ("randomization", 4, "arm", "IV", "allowed", "'IV' is not one of {PV, HA}"),
    ("randomization", 5, "rand_date", "", "required", "value is missing"),
    ("randomization", 5, "rand_date", "2025-13-01", "type", "'2025-13-01' is not a valid date"),
    ("labs", 3, "visit", "WEEK8", "allowed", "'WEEK8' is not one of {BASELINE, WEEK4, WEEK12, WEEK24, UNSCHEDULED}"),
    ("dosing", 2, "dose_no", "1.5", "type", "'1.5' is not a valid integer"),
])
def test_broken_cell_is_reported_by_file_row_column_rule(export_copy, trial, name, row, column, value, rule, text):
    _edit(export_copy, name, row, column, value)
    problems = _problems(export_copy, trial)
    assert [(p.file, p.row, p.column, p.rule) for p in problems] == [(f"{name}.csv", row, column, rule)]
    assert text in problems[0].message
    assert str(problems[0]).startswith(f"{name}.csv, row {row}, column {column}: ")


def test_every_problem_is_reported_not_only_the_first(export_copy, trial):
    _edit(export_copy, "labs", 2, "alt", "-5")
    _edit(export_copy, "labs", 9, "inr", "x")
    _edit(export_copy, "screening", 4, "consent", "maybe")
    found = {(p.file, p.row, p.column, p.rule) for p in _problems(export_copy, trial)}
    assert found == {("labs.csv", 2, "alt", "impossible"), ("labs.csv", 9, "inr", "type"),
                     ("screening.csv", 4, "consent", "allowed")}


def test_missing_file_column_and_unknown_column(export_copy, trial):
    (export_copy / "events.csv").unlink()
    labs = read_raw(export_copy / "labs.csv").drop(columns="sodium").assign(extra="1")
    labs.to_csv(export_copy / "labs.csv", index=False)
    _, errors, warnings = validate_export(export_copy, trial)
    assert {(p.file, p.column, p.rule) for p in errors} == {("events.csv", None, "missing_file"),
                                                          ("labs.csv", "sodium", "columns")}
    assert {(p.file, p.column, p.rule) for p in warnings} == {("labs.csv", "extra", "extra_column")}


def test_duplicate_key_is_reported(export_copy, trial):
    labs = read_raw(export_copy / "labs.csv")
    pd.concat([labs, labs.iloc[[0]]]).to_csv(export_copy / "labs.csv", index=False)
    problems = _problems(export_copy, trial)
    assert [(p.row, p.rule) for p in problems] == [(len(labs) + 2, "unique_key")]


def test_cross_file_rules(export_copy, trial):
    _edit(export_copy, "labs", 2, "subject_id", "99-999")
    events = read_raw(export_copy / "events.csv")
    death = events[events["event_type"] == "DEATH"].iloc[0]
    labs = read_raw(export_copy / "labs.csv")
    last = labs.index[labs["subject_id"] == death["subject_id"]][-1]
    late = (pd.Timestamp(death["start_date"]) + pd.Timedelta(days=3)).strftime("%Y-%m-%d")
    _edit(export_copy, "labs", int(last) + 2, "lab_date", late)
    found = {(p.file, p.row, p.column, p.rule) for p in _problems(export_copy, trial)}
    assert found == {("labs.csv", 2, "subject_id", "foreign_key"),
                     ("labs.csv", int(last) + 2, "lab_date", "after_end_of_follow_up")}


def test_visit_outside_window_is_a_warning_not_an_error(export_copy, trial):
    labs = read_raw(export_copy / "labs.csv")
    i = int(labs.index[labs["visit"] == "WEEK12"][0])
    early = (pd.Timestamp(labs.at[i, "lab_date"]) - pd.Timedelta(days=40)).strftime("%Y-%m-%d")
    _edit(export_copy, "labs", i + 2, "lab_date", early)
    _, problems, warnings = validate_export(export_copy, trial)
    assert problems == []
    assert [(w.file, w.row, w.rule) for w in warnings] == [("labs.csv", i + 2, "visit_window")]


def test_load_export_raises_with_every_problem(export_copy, trial):
    _edit(export_copy, "labs", 2, "alt", "-5")
    _edit(export_copy, "labs", 3, "alt", "-6")
    with pytest.raises(ExportError) as err:
        load_export(export_copy, trial)
    assert len(err.value.problems) == 2
    assert "labs.csv, row 3, column alt" in str(err.value)


def test_xlsx_files_are_accepted(export_copy, trial, export):
    reference = export
    labs = read_raw(export_copy / "labs.csv")
    labs.to_excel(export_copy / "labs.xlsx", index=False)
    (export_copy / "labs.csv").unlink()
    export = load_export(export_copy, trial)
    pd.testing.assert_frame_equal(export["labs"], reference["labs"])


def test_age_in_completed_years_at_birthday_boundaries():
    birth = pd.to_datetime(pd.Series(["1980-06-15", "1980-06-15", "1980-06-15", "2000-02-29"]))
    on = pd.to_datetime(pd.Series(["2025-06-14", "2025-06-15", "2025-12-31", "2025-02-28"]))
    assert age_at(birth, on).tolist() == [44, 45, 45, 24]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "helpers", *args], capture_output=True, text=True, cwd=paths.ROOT)


def test_cli_validate_intact_and_broken(export_copy, tmp_path):
    report = tmp_path / "report"
    ok = _cli("validate", str(export_copy), "--report", str(report))
    assert ok.returncode == 0, ok.stderr
    assert "trial file" in ok.stdout and "NCT06984497.yaml" in ok.stdout
    _edit(export_copy, "labs", 5, "tbil", "-1")
    _edit(export_copy, "labs", 6, "alp", "2500")
    bad = _cli("validate", str(export_copy), "--report", str(report))
    assert bad.returncode == 1
    assert "labs.csv, row 5, column tbil: -1 is outside the possible range [0, 2500] umol/L [rule: impossible]" in bad.stderr
    assert "error impossible: 1" in bad.stderr and "warning expected_range: 1" in bad.stderr
    problems = pd.read_csv(report / "problems.csv")
    assert problems[["severity", "file", "row", "column", "rule"]].values.tolist() == [
        ["error", "labs.csv", 5, "tbil", "impossible"], ["warning", "labs.csv", 6, "alp", "expected_range"]]
    assert pd.read_csv(report / "summary.csv")["count"].tolist() == [1, 1]


def test_cli_validate_honours_the_trial_and_cutoff(export_copy, tmp_path):
    out = _cli("validate", str(export_copy), "--trial", "NCT06242405", "--report", str(tmp_path))
    assert "NCT06242405.yaml" in out.stdout + out.stderr
    cut = _cli("validate", str(export_copy), "--cutoff", "2025-09-01", "--report", str(tmp_path))
    assert cut.returncode == 0 and "warning after_cutoff" in cut.stdout


def test_every_rule_the_loader_reports_is_in_the_rules_table():
    import re

    from helpers.data.schema import RULES

    code = (paths.ROOT / "src" / "helpers" / "data" / "loading.py").read_text()
    used = set(re.findall(r'"([a-z_]+)",\s*f?"[^"]*? ', code))  # a rule is the literal before its message
    assert used and used <= set(RULES), sorted(used - set(RULES))
    assert {severity for severity, _ in RULES.values()} == {"error", "warning"}


def test_visit_window_check_counts_study_days_as_adam_does(export_copy, trial):
    """Study day 1 is the first dose; the day before it is day -1 (no day 0), as ADLB's ADY counts. A baseline
    sample 14 days before day 1 is on day -14, inside the baseline window [-14, 1]; one 15 days before is not."""
    labs, infusion = read_raw(export_copy / "labs.csv"), read_raw(export_copy / "dosing.csv")
    i = int(labs.index[labs["visit"] == trial.baseline_visit.code][0])
    subject = labs.at[i, "subject_id"]
    day1 = pd.to_datetime(infusion.loc[infusion["subject_id"] == subject, "dose_date"]).min()
    lo = trial.baseline_visit.window[0]
    for before, expected in ((-lo, []), (-lo + 1, [("labs.csv", i + 2, "visit_window")])):
        _edit(export_copy, "labs", i + 2, "lab_date", (day1 - pd.Timedelta(days=before)).strftime("%Y-%m-%d"))
        _, problems, warnings = validate_export(export_copy, trial)
        assert [(w.file, w.row, w.rule) for w in warnings if w.rule == "visit_window"] == expected, before
    assert f"study day {lo - 1} outside" in [w for w in warnings if w.rule == "visit_window"][0].message
