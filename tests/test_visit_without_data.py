"""A follow-up visit without any data (every week-12 lab not done, a legitimate export): the visit drops out
of the analyses that need it, and every chapter still estimates the key endpoint at the last visit."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from helpers import paths
from helpers.analysis import findings, outcomes, safety, sensitivity, survival
from helpers.chapter import load_cohort
from helpers.report import findings as report_findings
from helpers.report import outcomes as report_outcomes
from helpers.report import plots
from helpers.report import sensitivity as report
from helpers.report.cohort import arm_header
from helpers.report.findings import chapter_verdict

EMPTY_VISIT, EMPTY_LABEL = "WEEK12", "Week 12"


@pytest.fixture(scope="module")
def clean(clean_dir):
    return load_cohort(str(clean_dir), paths.DEFAULT_TRIAL)


@pytest.fixture(scope="module")
def no_week12(clean_dir, tmp_path_factory):
    """The clean export with every lab value at week 12 coded ND (not done)."""
    folder = tmp_path_factory.mktemp("no_week12") / "export"
    shutil.copytree(clean_dir, folder)
    c = load_cohort(str(clean_dir), paths.DEFAULT_TRIAL)
    labs = pd.read_csv(folder / "labs.csv", dtype=str, keep_default_na=False)
    columns = [t.code.lower() for t in c.trial.lab_panel]
    assert (labs["visit"] == EMPTY_VISIT).any() and set(columns) <= set(labs.columns)
    labs.loc[labs["visit"] == EMPTY_VISIT, columns] = "ND"
    labs.to_csv(folder / "labs.csv", index=False, lineterminator="\n")
    return load_cohort(str(folder), paths.DEFAULT_TRIAL)


def _chapter(c):
    a = sensitivity.sensitivity_analyses(c.adlb, c.adsl, c.trial, c.trial.key_secondary, m=5)
    return a, report.chapter_numbers(a, c.adsl, c.adlb, c.trial, c.trial.key_secondary, c.source)


def test_the_export_has_no_value_at_week_12(no_week12):
    post = no_week12.adlb[no_week12.adlb["AVISITN"] > 0]
    assert post.loc[post["AVISIT"] == EMPTY_LABEL, "AVAL"].isna().all()
    assert post.loc[post["AVISIT"] != EMPTY_LABEL, "AVAL"].notna().any()


def test_sensitivity_chapter_is_estimable_without_the_empty_visit(no_week12, clean):
    a, numbers = _chapter(no_week12)
    _, clean_numbers = _chapter(clean)
    assert "not_estimable" not in a
    results = a["results"]
    assert set(results["analysis"]) == {sensitivity.PRIMARY, sensitivity.MULTIPLE_IMPUTATION, sensitivity.WORST_RANK,
                                        sensitivity.TIPPING_POINT}
    shown = results[results["analysis"] != sensitivity.TIPPING_POINT]
    assert np.isfinite(shown[["estimate", "lower", "upper", "p_value"]].to_numpy(dtype=float)).all()
    assert set(a["completed"]["AVISIT"]) == {"Week 4", "Week 24"}
    assert a["wide"][EMPTY_LABEL].isna().all()
    assert numbers["n_mmrm"] == clean_numbers["n_mmrm"] > 0
    assert numbers["n_itt"] == clean_numbers["n_itt"] and numbers["wr_n"] == clean_numbers["wr_n"]
    assert numbers["followup"] == "week 4, week 24 (week 12 left out: no values)"
    assert clean_numbers["followup"] == "week 4, week 12, week 24"
    texts = [numbers[k] for k in ("primary_text", "mi_text", "wr_text", "tipping_text", "agreement", "grid_text")]
    assert not [t for t in texts if "not estimable" in t.lower()]
    assert numbers["primary_text"].startswith("difference ") and numbers["wr_text"].startswith("win probability ")
    assert numbers["agreement"][0].isupper()


def test_sensitivity_tables_and_figure_are_drawn(no_week12):
    c = no_week12
    a, _ = _chapter(c)
    key = c.trial.key_secondary
    for table in (report.show_worst_rank(a, c.adsl, c.trial), report.show_tipping_grid(a, c.adsl, c.trial, key),
                  report.show_comparison(a["results"], c.trial, key)):
        assert report.NOT_ESTIMABLE_ROW not in table.data
    assert plots.plot_sensitivity(a["results"], c.trial, key).axes


def test_outcomes_and_summary_estimate_the_last_visit_and_show_the_empty_one(no_week12):
    c = no_week12
    header = arm_header(c.adsl, c.trial)
    results = outcomes.outcome_results(c.adlb, c.adsl, c.trial)
    mmrm = results["mmrm"]
    key = mmrm[(mmrm["PARAMCD"] == c.trial.key_secondary) & (mmrm["AVISIT"] == c.trial.last_visit.label)]
    assert len(key) == 1 and np.isfinite(key[["estimate", "p_value"]].to_numpy(dtype=float)).all()
    assert EMPTY_LABEL not in set(mmrm["AVISIT"])
    ancova = results["ancova"]
    assert (ancova.loc[ancova["AVISIT"] == EMPTY_LABEL, "n"] == 0).all()
    assert ancova.loc[ancova["AVISIT"] == c.trial.last_visit.label, "estimate"].notna().all()
    report_outcomes.chapter_numbers(results, c.adsl, c.trial, c.source)
    report_outcomes.lab_by_visit_report(results["lab_by_visit"], c.adlb, c.trial, header)
    report_outcomes.model_report(mmrm)
    plots.plot_forest(mmrm, c.trial)
    plots.plot_mean_ci(outcomes.mean_ci_by_visit(c.adlb, c.trial), c.trial, header)
    surv = survival.survival_results(c.adtte, c.adsl, c.trial)
    holm = outcomes.holm_table(mmrm, c.trial.last_visit.label)
    ae = safety.adverse_event_results(safety.build_adae(c.export, c.adsl, c.trial),
                                      safety.deaths(c.export, c.adsl, c.trial), c.adsl, c.trial)
    key_results = findings.key_results(surv, mmrm, holm, ae, c.trial)
    report_findings.key_results_table(key_results, c.trial, header)
    summary = report_findings.summary_numbers(c.trial, c.adsl, c.source, surv, mmrm)
    assert "not estimable" not in summary["verdict_key"]
    assert "not estimable" not in chapter_verdict(c)
