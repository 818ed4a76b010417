"""The survival chapter's report layer: the glued numbers, the chapter's tables and the Kaplan-Meier figure."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import survival
from helpers.report import plots
from helpers.report import survival as report
from helpers.report.cohort import arm_header


def test_few_events_caution_below_the_threshold_only():
    assert "3 event(s)" in report.few_events_caution(3)
    assert report.few_events_caution(survival.FEW_EVENTS) == ""


def test_chapter_numbers_cover_both_endpoints_and_the_trial_rules(adam, trial):
    results = survival.survival_results(adam["adtte"], adam["adsl"], trial)
    numbers = report.chapter_numbers(results, adam["adsl"], trial, "synthetic cohort")
    assert {f"lead_{k}" for k in ("surv", "diff", "logrank", "hr", "events", "caution", "fisher")} <= set(numbers)
    assert numbers["horizon_days"] == trial.horizon_days and numbers["horizon_weeks"] == "24"
    assert numbers["control"] == trial.control.label and numbers["n_randomized"] == len(adam["adsl"])
    assert numbers["lead_label"] == "Overall survival to week 24"
    assert numbers["lead_variable"] == "time from randomization to death"
    assert numbers["lead_censoring"].startswith("Liver transplant is censored at its date, as the trial file specifies")
    assert numbers["other_endpoints"] == ("Transplant-free survival (death or liver transplant, whichever came first) "
                                          "is reported as a further endpoint.")
    assert numbers["source"] == "synthetic cohort"


def test_chapter_tables_carry_their_numbers_and_horizon(adam, trial):
    adtte, adsl, adlb = adam["adtte"], adam["adsl"], adam["adlb"]
    results = survival.survival_results(adtte, adsl, trial)
    shown = {"tab-tte-events": report.show_event_counts(adtte, adsl, trial),
             "tab-km-tte": report.show_km_numbers(survival.km_estimates(adtte, trial), adsl, trial),
             "tab-tte-summary": report.show_summary(results, trial, "OS"),
             "tab-vital-status": report.show_vital_status(adtte, adsl, trial),
             "tab-tfs-summary": report.show_summary(results, trial, "TFS"),
             "tab-intercurrent": report.show_intercurrent_events(adsl, adlb, trial)}
    for name, table in shown.items():
        assert table.name == name and f":name: {name}\n" in table._repr_markdown_()
        assert "Table 5." not in table.data
    assert f"to day {trial.horizon_days}" in shown["tab-tte-events"].data
    for label in arm_header(adsl, trial).values():
        assert label in shown["tab-intercurrent"].data


def test_km_plot_table_lists_each_event_time():
    km = pd.DataFrame({"ARM": "A", "TIME": [0.0, 3, 5], "N_RISK": [4, 4, 2], "N_EVENT": [0, 1, 0],
                       "SURV": [1, 0.75, 0.75], "LCL": [np.nan, 0.2, 0.2], "UCL": [np.nan, 0.96, 0.96]})
    table = report.km_plot_table(km)
    assert table["Day"].tolist() == [0, 3] and table["95% CI (%)"].tolist() == ["", "20.0 to 96.0"]


def test_km_figure_labels_the_endpoint(adam, trial):
    km = survival.km_estimates(adam["adtte"], trial)
    fig = plots.km_figure(km, adam["adtte"], adam["adsl"], trial, "TFS")
    assert fig.axes[0].get_ylabel() == "Transplant-free survival (%)"
    assert plots.km_figure(km, adam["adtte"], adam["adsl"], trial).axes[0].get_ylabel() == \
        "Overall survival to week 24 (%)"
    header = arm_header(adam["adsl"], trial)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [header[a.label] for a in trial.arms]
