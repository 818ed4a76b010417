"""The verdicts of the analysis plan: the fixed sequence decided from hand-made results, the sentences, the key table."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import findings, outcomes, safety, survival
from helpers.report import findings as report
from helpers.report.cohort import arm_header
from helpers.trial import TrialFileError, load_trial


def survival_rows(trial, p_fisher, p_logrank=0.5):
    ha, pv = trial.experimental_arms[0].label, trial.control.label
    return pd.DataFrame([
        {"PARAMCD": "OS", "ANALYSIS": f"{survival.KM_SURVIVAL} at day 168", "ARM": pv, "REFERENCE": "",
         "ESTIMATE": 0.75, "LCL": 0.5, "UCL": 0.9, "PVALUE": np.nan, "EVENTS": 4, "N": 16},
        {"PARAMCD": "OS", "ANALYSIS": f"{survival.KM_SURVIVAL} at day 168", "ARM": ha, "REFERENCE": "",
         "ESTIMATE": 0.9375, "LCL": 0.7, "UCL": 0.99, "PVALUE": np.nan, "EVENTS": 1, "N": 16},
        {"PARAMCD": "OS", "ANALYSIS": survival.LOGRANK, "ARM": "all", "REFERENCE": "", "ESTIMATE": 1.0,
         "LCL": np.nan, "UCL": np.nan, "PVALUE": p_logrank, "EVENTS": 5, "N": 32},
        {"PARAMCD": "OS", "ANALYSIS": survival.FISHER, "ARM": ha, "REFERENCE": pv, "ESTIMATE": 5.0,
         "LCL": np.nan, "UCL": np.nan, "PVALUE": p_fisher, "EVENTS": 5, "N": 32}])


def mmrm_rows(trial, p, estimate=-2.0):
    return pd.DataFrame([{"PARAMCD": "MELD", "PARAM": "MELD score (points)", "AVISIT": trial.last_visit.label,
                          "AVISITN": 24, "TRT01P": trial.experimental_arms[0].label, "contrast": "x", "n": 25,
                          "estimate": estimate, "se": 1.0, "df": 20.0, "lower": estimate - 2, "upper": estimate + 2,
                          "p_value": p, "scale": outcomes.ORIGINAL_SCALE}])


@pytest.mark.parametrize("p1, p2, expected", [
    (0.01, 0.03, [findings.MET, findings.MET]),
    (0.01, 0.20, [findings.MET, findings.NOT_MET]),
    (0.20, 0.001, [findings.NOT_MET, findings.NOT_TESTED]),
    (0.05, 0.001, [findings.NOT_MET, findings.NOT_TESTED]),
    (np.nan, 0.001, [findings.NOT_ESTIMABLE, findings.NOT_TESTED]),
])
def test_fixed_sequence_tests_the_key_secondary_only_after_the_primary_is_met(trial, p1, p2, expected):
    ds = findings.decisions(survival_rows(trial, p1), mmrm_rows(trial, p2), trial)
    assert [d.outcome for d in ds] == expected
    assert [d.endpoint for d in ds] == ["OS", "MELD"]


def test_the_primary_test_is_the_one_the_trial_file_names(trial):
    logrank = dataclasses.replace(trial, primary_test="logrank")
    rows = survival_rows(trial, p_fisher=0.5, p_logrank=0.001)
    assert findings.decisions(rows, mmrm_rows(trial, 0.5), trial)[0].outcome == findings.NOT_MET
    assert findings.decisions(rows, mmrm_rows(trial, 0.5), logrank)[0].outcome == findings.MET


def test_verdict_sentences_say_what_was_decided_and_why(trial):
    not_met = report.verdicts(survival_rows(trial, 0.2), mmrm_rows(trial, 0.01), trial)
    assert not_met["verdict_primary"].startswith("The primary endpoint (overall survival to week 24) was not met: ")
    assert "93.8% (95% CI 70.0 to 99.0) with Hepatic artery versus 75.0% (95% CI 50.0 to 90.0) with Peripheral vein" \
        in not_met["verdict_primary"]
    assert "P = 0.200 (two-sided level 0.05)" in not_met["verdict_primary"]
    assert not_met["verdict_key"].startswith("The key secondary endpoint, the change in MELD score from baseline to "
                                             "Week 24, was not tested confirmatorily, because the primary endpoint was not met")
    assert "difference -2.00 points (95% CI -4.00 to 0.00; P = 0.010)" in not_met["verdict_key"]
    met = report.verdicts(survival_rows(trial, 0.01), mmrm_rows(trial, 0.01), trial)
    assert "was met:" in met["verdict_primary"] and "Week 24, was met (MMRM)" in met["verdict_key"]
    assert met["verdict"] == met["verdict_primary"] + " " + met["verdict_key"]


def test_an_interim_verdict_says_so(trial):
    interim = trial.with_cutoff("2025-10-01")
    v = report.verdicts(survival_rows(trial, 0.01), mmrm_rows(trial, 0.01), interim)
    assert v["verdict"].startswith("Interim build (data cut-off 01 October 2025): these are not the final results.")


def test_key_results_cover_primary_key_secondary_secondaries_and_safety(adam, export, trial):
    adlb, adsl, adtte = adam["adlb"], adam["adsl"], adam["adtte"]
    surv = survival.survival_results(adtte, adsl, trial)
    mmrm = outcomes.mmrm_table(adlb, trial, adsl)
    holm = outcomes.holm_table(mmrm, trial.last_visit.label)
    ae = safety.adverse_event_results(safety.build_adae(export, adsl, trial), safety.deaths(export, adsl, trial),
                                      adsl, trial)
    key = findings.key_results(surv, mmrm, holm, ae, trial)
    assert key["ROLE"].drop_duplicates().tolist() == ["primary", "key secondary", "secondary", "safety"]
    assert key.loc[key["ROLE"] == "secondary", "ENDPOINT"].tolist() == [e.code for e in trial.endpoints if e.code != "MELD"]
    shown = report.key_results_table(key, trial, arm_header(adsl, trial))
    assert len(shown) == 1 + 3 + len(trial.endpoints) + 2
    km = survival.survival_at_horizon(adtte, trial).set_index("ARM")
    pv = trial.control.label
    assert shown.iloc[0][arm_header(adsl, trial)[pv]] == \
        f"{100 * km.loc[pv, 'ESTIMATE']:.1f} ({100 * km.loc[pv, 'LCL']:.1f} to {100 * km.loc[pv, 'UCL']:.1f})"
    deaths = int((adsl["DTHFL"] == "Y").sum())
    death_row = shown[shown["Finding"] == report.SAFETY_LABELS["DEATH"]].iloc[0]
    assert sum(int(death_row[h].split(" ")[0]) for h in arm_header(adsl, trial).values()) == deaths
    meld = mmrm[(mmrm["PARAMCD"] == "MELD") & (mmrm["AVISIT"] == trial.last_visit.label)].iloc[0]
    assert shown.loc[shown["Finding"].str.startswith("Key secondary: MELD"), "P"].iloc[0] == f"{meld['p_value']:.3f}"
    text = report.key_results_csv(key)["TEXT"]
    cells = set(shown.drop(columns="Finding").to_numpy().ravel())
    assert set(text) <= cells and "" not in set(text) and len(set(text)) == len(key)


def test_the_trial_file_refuses_an_unknown_primary_test(tmp_path, trial):
    text = trial.source.read_text(encoding="utf-8").replace("primary_test: fisher", "primary_test: chisquare")
    (tmp_path / "t.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(TrialFileError, match="primary_test must be one of"):
        load_trial(tmp_path / "t.yaml")
