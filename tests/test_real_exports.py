"""What real exports and interim looks need beyond the loader: the trial file's contract, not-estimable
results stated in words, the validation report and the interim marking."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from test_survival import tiny_adtte

from helpers import pipeline
from helpers.analysis import outcomes, sensitivity, survival
from helpers.data.loading import Problem, summary_by_rule
from helpers.data.schema import export_spec
from helpers.report import cohort as report_cohort
from helpers.report import outcomes as report_outcomes
from helpers.report import sensitivity as report_sensitivity
from helpers.report import survival as report_survival
from helpers.trial import TrialFileError, load_trial

# --- the trial file owns the contract --------------------------------------------------------------

def test_labs_columns_and_unit_columns_come_from_the_lab_panel(trial):
    labs = export_spec(trial)["labs"]
    panel = [t.column for t in trial.lab_panel]
    assert [c for c in labs.column_names if c in panel] == panel
    unit = next(c for c in labs.columns if c.name == "tbil_unit")
    assert unit.optional_column and set(unit.allowed) == {"umol/L", "mg/dL"}
    assert next(c for c in labs.columns if c.name == "alp").max == 50000


def test_screening_flags_come_from_the_eligibility_of_the_trial_file():
    oral = export_spec(load_trial("DEMO-ORAL"))
    names = oral["screening"].column_names
    assert {"decompensated_cirrhosis", "hcc", "renal_failure"} <= set(names) and "hiv" not in names
    assert oral["dosing"].optional and not export_spec(load_trial())["dosing"].optional
    assert "alt" not in oral["labs"].column_names and load_trial("DEMO-ORAL").derived_scores == []


def _trial_with(tmp_path, **changes):
    raw = yaml.safe_load(open(load_trial().source, encoding="utf-8"))
    raw.update(changes)
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_trial_file_refuses_endpoints_its_panel_cannot_give(tmp_path):
    panel = [t for t in yaml.safe_load(open(load_trial().source))["lab_panel"] if t["code"] not in ("INR", "ALT")]
    with pytest.raises(TrialFileError) as err:
        load_trial(_trial_with(tmp_path, lab_panel=panel))
    assert "endpoint ALT: not a test of the lab_panel" in str(err.value)
    assert "derived parameter MELD cannot be derived from the lab_panel: it lacks INR (needs TBIL (umol/L), INR (1)" in str(err.value)


def test_cutoff_from_the_trial_file_or_a_build_parameter(tmp_path):
    assert load_trial().cutoff is None and not load_trial().is_interim
    assert str(load_trial().with_cutoff("2025-10-01").cutoff) == "2025-10-01"
    assert str(load_trial("DEMO-ORAL").cutoff) == "2026-08-17"
    with pytest.raises(TrialFileError, match="not a date"):
        load_trial().with_cutoff("2025-13-01")


# --- not estimable, said in words ----------------------------------------------------------------

def test_survival_at_horizon_is_not_estimable_when_nobody_was_followed_that_long(trial):
    other = [a for a in trial.arm_codes if a != trial.control_arm][0]
    d = tiny_adtte(trial, [10, 40, 60, 20, 30, 50], [1, 0, 0, 0, 0, 0], [trial.control_arm] * 3 + [other] * 3)
    res = survival.survival_at_horizon(d, trial)
    assert res["ESTIMATE"].isna().all()


def test_survival_at_horizon_is_zero_when_everyone_died_before_it(trial):
    other = [a for a in trial.arm_codes if a != trial.control_arm][0]
    h = trial.horizon_days
    d = tiny_adtte(trial, [10, 20, h, h], [1, 1, 0, 0], [trial.control_arm] * 2 + [other] * 2)
    res = survival.survival_at_horizon(d, trial).set_index("ARM")
    assert res.loc[trial.arm_labels[trial.control_arm], "ESTIMATE"] == 0.0
    assert res.loc[trial.arm_labels[other], "ESTIMATE"] == 1.0


def test_logrank_without_events_is_said_in_words(trial, adam):
    adtte = adam["adtte"].assign(CNSR=1)
    res = survival.survival_results(adtte, adam["adsl"], trial)
    assert report_survival.prose_numbers(res, "OS", trial)["os_logrank"] == "not estimable: no deaths were recorded"


def test_key_secondary_without_data_at_the_last_visit(trial):
    mmrm = pd.DataFrame({"PARAMCD": ["MELD"], "AVISIT": ["Week 12"]})
    numbers = report_outcomes.key_secondary_numbers(mmrm, trial.with_cutoff("2025-10-01"))
    assert numbers["key_effect"] == "not estimable: no participant was observed at week 24 by the data cut-off"


def test_child_pugh_results_only_when_the_score_can_be_derived(adam, trial):
    assert report_outcomes.best_class_text({}, "Week 24", trial) == report_outcomes.NO_CLASSES
    adlb = adam["adlb"]
    best = outcomes.proportion_best_class(adlb, adam["adsl"], trial, "CPSCORE")
    text = report_outcomes.best_class_text({"cpscore_best_class": best}, "Week 24", trial)
    assert text.count("assessed") == 2


def _wide(trial, observed_per_arm):
    rows = []
    for arm in [a.label for a in trial.arm_order]:
        for i in range(10):
            rows.append({"USUBJID": f"{arm}-{i}", "TRT01P": arm, "BASE": 1.0,
                         **{v.label: (0.5 if i < observed_per_arm else np.nan) for v in trial.followup_visits}})
    return pd.DataFrame(rows)


def test_sensitivity_analyses_need_enough_observed_participants(trial):
    need = len(trial.followup_visits) + 3
    assert sensitivity.not_estimable_reason(_wide(trial, need), trial) is None
    reason = sensitivity.not_estimable_reason(_wide(trial, need - 1), trial.with_cutoff("2025-10-01"))
    assert reason.startswith("not estimable: 5 participant(s) of the Peripheral vein arm observed at week 4 by the data cut-off")


def test_sensitivity_chapter_numbers_say_not_estimable_at_an_early_cutoff(trial, clean_dir):
    c = pipeline.load_cohort(str(clean_dir), cutoff="2025-10-01")
    a = sensitivity.sensitivity_analyses(c.adlb, c.adsl, c.trial, "MELD")
    assert "not_estimable" in a and a["results"].empty
    numbers = report_sensitivity.chapter_numbers(a, c.adsl, c.adlb, c.trial, "MELD", c.source)
    ended = numbers["n_death_last"] + numbers["n_transplant_last"] + numbers["n_wd_last"]
    assert numbers["primary_text"].startswith("result that is not estimable") and numbers["n_not_due_last"] + ended == len(c.adsl)
    assert len(a["wide"]) <= ended, "only those whose follow-up ended before week 24 can be missing there yet"


# --- validation report and interim marking -------------------------------------------------------

def test_summary_by_rule_counts_and_gives_first_examples():
    errors = [Problem("labs.csv", r, "alp", "impossible", "x") for r in (2, 3, 4, 5)]
    warnings = [Problem("labs.csv", 1, "note", "extra_column", "y")]
    s = summary_by_rule(errors, warnings)
    assert s.values.tolist() == [["error", "impossible", 4, "labs.csv row 2 alp; labs.csv row 3 alp; labs.csv row 4 alp"],
                                 ["warning", "extra_column", 1, "labs.csv row 1 note"]]


def test_validation_page_and_warnings_by_rule(trial, export):
    warnings = [Problem("labs.csv", 9, "visit", "unscheduled_visit", "x")]
    page = pipeline.validation_markdown([], warnings, trial, "synthetic cohort (seed 1)")
    assert "0 error(s), 1 warning(s)" in page and "| warning | `unscheduled_visit` | 1 | labs.csv row 9 visit |" in page
    assert "NCT06984497.yaml" in page
    export.warnings.append(warnings[0])
    try:
        assert report_cohort.warnings_by_rule(export).values.tolist() == [["unscheduled_visit", 1, "labs.csv row 9 visit"]]
    finally:
        export.warnings.pop()


def test_book_config_names_the_trial_and_every_page_says_where_the_data_come_from(trial):
    record = {"parameters": {"seed": 20250701, "data": "export"}, "export_sha256": "ab" * 32,
              "blinding": "unblinded (arms named)"}
    final = yaml.safe_load(pipeline.book_config(trial, pipeline.banner("synthetic", trial, record)))
    assert final["title"].startswith("NCT06984497")
    assert final["html"]["announcement"] == ("SYNTHETIC DATA (simulated, seed 20250701): not results of the trial"
                                             " · Final analysis · Unblinded (arms named)")
    interim = trial.with_cutoff("2025-10-01")
    real = pipeline.banner("/data/export", interim, record)
    assert real == "Site export export (SHA-256 abababababab) · Interim build, data cut-off 01 October 2025 · Unblinded (arms named)"
    assert "Interim build: data cut-off 01 October 2025" in pipeline.trial_markdown(interim)


def test_provenance_records_commit_inputs_parameters_and_versions(trial, monkeypatch):
    from helpers import provenance

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    record = provenance.collect(trial, {"labs.csv": "a" * 64}, {"data": "synthetic", "seed": 1}, "synthetic cohort")
    assert record["build_date"] == "2026-01-01T00:00:00Z" and len(record["commit"]) in (40, 36)
    assert record["trial_file"]["sha256"] == provenance.sha256(trial.source)
    assert record["packages"]["pandas"] != "not installed"
    page = provenance.markdown(record)
    assert "`labs.csv` | `" + "a" * 64 in page and "Python" in page
