"""The sensitivity chapter's report layer and the split of the analyses: one prose formatter, the chapter's
tables (absent when not estimable), the glued numbers, and no report import in the analysis modules."""
from __future__ import annotations

import ast
import dataclasses
import inspect

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import imputation, sensitivity, survival, tipping, worst_rank
from helpers.report import sensitivity as report

PARAM = "MELD"


@pytest.mark.parametrize("module", [imputation, tipping, worst_rank, sensitivity, survival])
def test_analysis_modules_do_not_import_the_report_layer(module):
    tree = ast.parse(inspect.getsource(module))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.startswith(("helpers.report", "matplotlib"))]


def test_worse_sign_follows_the_endpoint(trial):
    assert imputation.worse_sign(trial, PARAM) == 1
    endpoints = tuple(dataclasses.replace(e, better="higher") if e.code == PARAM else e for e in trial.endpoints)
    assert imputation.worse_sign(dataclasses.replace(trial, endpoints=endpoints), PARAM) == -1


def test_result_text_without_unit_for_win_probability_and_not_estimable():
    row = pd.Series({"measure": sensitivity.RATIO, "estimate": 0.91, "lower": 0.8, "upper": 1.04, "p_value": 0.2})
    assert report.result_text(row, "points") == "ratio of geometric means 0.91 (95% CI 0.80 to 1.04; P = 0.200)"
    assert report.result_text(row.copy().replace({0.91: np.nan})) == "not estimable"


def test_report_table_says_not_reached_for_a_tipping_point_outside_the_grid():
    results = pd.DataFrame({"analysis": [sensitivity.TIPPING_POINT, sensitivity.WORST_RANK], "strategy": "",
                            "measure": [sensitivity.DIFFERENCE, sensitivity.WIN_PROBABILITY],
                            "estimate": np.nan, "lower": np.nan, "upper": np.nan, "p_value": np.nan, "n": 10,
                            "delta": [np.nan, np.nan]})
    assert report.report_table(results)["Estimate (95% CI)"].tolist() == ["not reached", "not estimable"]


def test_tables_say_not_estimable_and_keep_their_labels_when_the_analyses_are_not(adam, trial):
    a = {"wide": pd.DataFrame(), "not_estimable": "not estimable: too few",
         "results": pd.DataFrame(columns=sensitivity.RESULT_COLUMNS)}
    shown = [report.show_worst_rank(a, adam["adsl"], trial), report.show_tipping_grid(a, adam["adsl"], trial, PARAM),
             report.show_comparison(a["results"], trial, PARAM)]
    assert [t.name for t in shown] == ["tab-worst-rank", "tab-tipping", "tab-sensitivity-comparison"]
    for table in shown:
        assert report.NOT_ESTIMABLE_ROW in table.data
        assert f":name: {table.name}" in table._repr_markdown_()


def test_chapter_numbers_say_why_when_not_estimable(adam, trial):
    wide = sensitivity.change_wide(adam["adlb"], adam["adsl"], trial, PARAM)
    a = {"wide": wide, "not_estimable": "not estimable: too few", "results": pd.DataFrame()}
    numbers = report.chapter_numbers(a, adam["adsl"], adam["adlb"], trial, PARAM, "synthetic cohort")
    assert list(numbers)[:2] == ["source", "n_per_arm"]
    assert numbers["primary_text"] == numbers["mi_text"] == "result that is not estimable (too few)"
    assert numbers["tipping_text"] == numbers["agreement"] == "Not estimable: too few."
    assert numbers["n_mmrm"] == adam["adlb"].query("AVISITN > 0 and PARAMCD == @PARAM").dropna(
        subset=["AVAL", "BASE"])["USUBJID"].nunique() > 0
    assert numbers["ice_handling"] == ("Liver transplant follows the trial file (overall survival to week 24 does not "
                                       "count it as an event): participants with liver transplant are treated as "
                                       "missing, like a withdrawal, and left out of the ranking.")
    assert numbers["last_visit"] == trial.last_visit.label.lower()
    assert numbers["n_itt"] == len(wide) and numbers["m"] == imputation.N_IMPUTATIONS


def test_the_chapter_examines_a_continuous_primary_at_the_last_visit_else_the_key_secondary(tmp_path, adam, trial):
    """ICH E9(R1): sensitivity analyses belong to the primary estimand when it is a change at the last visit."""
    from test_findings import continuous_trial_file

    from helpers.trial import load_trial
    assert trial.sensitivity_endpoint == trial.key_secondary == "MELD"
    last = load_trial(continuous_trial_file(tmp_path, code="ALB", visit="WEEK24"))
    earlier = load_trial(continuous_trial_file(tmp_path, code="ALB", visit="WEEK12"))
    assert last.sensitivity_endpoint == "ALB" and earlier.sensitivity_endpoint == "MELD"
    wide = sensitivity.change_wide(adam["adlb"], adam["adsl"], last, "ALB")
    a = {"wide": wide, "not_estimable": "not estimable: too few", "results": pd.DataFrame()}
    assert report.chapter_numbers(a, adam["adsl"], adam["adlb"], last, "ALB", "x")["endpoint_role"] == "primary endpoint"
    assert report.chapter_numbers(a, adam["adsl"], adam["adlb"], trial, PARAM, "x")["endpoint_role"] == \
        "key secondary endpoint"
