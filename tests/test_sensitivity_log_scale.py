"""A log-scale key endpoint (DEMO-ORAL's bilirubin): the sensitivity chapter restates the outcomes chapter's MMRM
as the same ratio of geometric means, and says that its deltas are on the log scale."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.analysis import outcomes
from helpers.analysis.sensitivity import PRIMARY, RATIO, WORST_RANK, sensitivity_analyses
from helpers.data.adam import build_adam
from helpers.data.loading import load_export
from helpers.data.simulation import simulate_export, write_export
from helpers.report import sensitivity as report
from helpers.trial import load_trial


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    trial = load_trial("DEMO-ORAL")
    folder = tmp_path_factory.mktemp("demo_export")
    write_export(simulate_export(trial, realistic=False), folder)
    adam = build_adam(load_export(folder, trial), trial)
    return trial, adam, sensitivity_analyses(adam["adlb"], adam["adsl"], trial, trial.key_secondary, m=10)


def test_the_primary_ratio_equals_the_outcomes_chapters_mmrm_to_the_printed_digits(demo):
    trial, adam, a = demo
    assert trial.endpoint(trial.key_secondary).log
    mmrm = outcomes.mmrm_table(adam["adlb"], trial, adam["adsl"], codes=[trial.key_secondary])
    expected = mmrm[mmrm["AVISIT"] == trial.last_visit.label].iloc[0]
    primary = a["results"][a["results"]["analysis"] == PRIMARY].iloc[0]
    assert primary["measure"] == RATIO
    for col in ("estimate", "lower", "upper"):
        assert f"{primary[col]:.2f}" == f"{expected[col]:.2f}", col
    assert primary["lower"] < primary["estimate"] < primary["upper"]
    assert primary["p_value"] == pytest.approx(expected["p_value"], abs=1e-9)


def test_every_difference_of_a_log_endpoint_is_reported_as_a_ratio(demo):
    _, _, a = demo
    results = a["results"]
    assert (results.loc[results["analysis"] != WORST_RANK, "measure"] == RATIO).all()
    ratios = results[results["measure"] == RATIO].dropna(subset=["estimate"])
    assert (ratios[["estimate", "lower", "upper"]] > 0).all().all()
    mi = ratios.iloc[1]
    assert np.log(mi["estimate"]) == pytest.approx(a["mi"].iloc[0]["estimate"], abs=1e-12), "exp of the MI's log ratio"


def test_deltas_of_a_log_endpoint_are_on_the_log_scale_not_in_its_unit(demo):
    trial, adam, a = demo
    numbers = report.chapter_numbers(a, adam["adsl"], adam["adlb"], trial, trial.key_secondary, "synthetic")
    assert "natural-log scale" in numbers["grid_text"] and "umol/L" not in numbers["grid_text"]
    assert "natural-log scale" in numbers["tipping_text"] and "umol/L" not in numbers["tipping_text"]
    assert "umol/L" not in " ".join(a["results"]["note"])


def test_delta_text_names_the_unit_or_the_factor():
    trial = load_trial("DEMO-ORAL")
    assert report.delta_text(0.5, trial.endpoint("ALB")) == "0.50 g/L"
    assert report.delta_text(np.log(2), trial.endpoint("TBIL")) == "0.69 on the natural-log scale (values \u00d7 2.00)"
