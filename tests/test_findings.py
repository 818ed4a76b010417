"""The verdicts of the analysis plan: the fixed sequence decided from hand-made results, the sentences, the key table."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from conftest import write_tiny_notebook
from helpers import chapter, paths, pipeline
from helpers.analysis import findings, outcomes, safety, survival
from helpers.analysis.results import Results
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


# ------------------------------------------------------------------ the time-to-event trial's verdict, word for word

GOLDEN_VERDICT = (
    "The primary endpoint (overall survival to week 24) was not met: survival at day 168 was 87.1% (95% CI 57.3 to "
    "96.6) with Hepatic artery versus 80.8% (95% CI 51.4 to 93.4) with Peripheral vein; Fisher's exact test on "
    "survivors at the horizon P = 1.000 (two-sided level 0.05). The key secondary endpoint, the change in MELD score "
    "from baseline to Week 24, was not tested confirmatorily, because the primary endpoint was not met; descriptively "
    "(MMRM, unadjusted), Hepatic artery versus Peripheral vein, difference -0.99 points (95% CI -2.34 to 0.35; "
    "P = 0.141).")
GOLDEN_ENDPOINT = ("Primary endpoint: overall survival to week 24, tested by Fisher's exact test on survivors at the "
                   "horizon at two-sided level 0.05; key secondary endpoint: change in MELD score to Week 24, tested "
                   "only if the primary endpoint is met.")


def test_the_time_to_event_verdict_on_the_clean_export_is_unchanged(adam, trial):
    """The sentences as the book printed them before a continuous primary endpoint existed (golden)."""
    f = Results(None, adam["adsl"], adam["adlb"], adam["adtte"], trial).findings
    assert report.verdicts(f.survival, f.mmrm, trial)["verdict"] == GOLDEN_VERDICT
    assert report.summary_numbers(trial, adam["adsl"], "x", f.survival, f.mmrm)["trial_endpoint"] == GOLDEN_ENDPOINT
    assert report.key_results_notes(trial) == report.KEY_RESULTS_NOTES


# ------------------------------------------------------------------ a continuous primary endpoint at a visit

def continuous_trial_file(folder, code="ALB", visit="WEEK24", key="MELD", primary_test=False):
    """NCT06984497's trial file with a continuous primary endpoint (``code`` at ``visit``), the key secondary
    ``key`` (None: none), and the primary test line removed unless ``primary_test``."""
    text = paths.trial_file(paths.DEFAULT_TRIAL).read_text(encoding="utf-8")
    start = text.index("primary_endpoint:\n")
    end = re.search(r"^[^ \n]", text[start + len("primary_endpoint:\n"):], re.M).start() + start + len("primary_endpoint:\n")
    text = (text[:start] + f"primary_endpoint:\n  code: {code}\n  kind: continuous\n  visit: {visit}\n"
            f"  label: Change in {code.lower()} to week {visit[4:]}\n" + text[end:])
    if not primary_test:
        text = text.replace("  primary_test: fisher\n", "")
    text = text.replace("key_secondary: MELD\n", f"key_secondary: {key}\n" if key else "")
    path = folder / f"continuous-{code}-{visit}-{key}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def continuous(tmp_path_factory):
    return load_trial(continuous_trial_file(tmp_path_factory.mktemp("continuous")))


def model_rows(trial, code, rows, scale=outcomes.ORIGINAL_SCALE):
    """Hand-made MMRM rows of ``code``: ``rows`` is a list of (visit label, estimate, p)."""
    return pd.DataFrame([{"PARAMCD": code, "PARAM": code, "AVISIT": v, "AVISITN": 0,
                          "TRT01P": trial.experimental_arms[0].label, "contrast": "x", "n": 25, "estimate": est,
                          "se": 1.0, "df": 20.0, "lower": est - 2 if scale == outcomes.ORIGINAL_SCALE else est * 0.8,
                          "upper": est + 2 if scale == outcomes.ORIGINAL_SCALE else est * 1.25, "p_value": p,
                          "scale": scale} for v, est, p in rows])


@pytest.mark.parametrize("p_alb, p_meld, expected", [
    (0.01, 0.03, [findings.MET, findings.MET]),
    (0.01, 0.20, [findings.MET, findings.NOT_MET]),
    (0.20, 0.001, [findings.NOT_MET, findings.NOT_TESTED]),
    (0.05, 0.001, [findings.NOT_MET, findings.NOT_TESTED]),
    (np.nan, 0.001, [findings.NOT_ESTIMABLE, findings.NOT_TESTED]),
])
def test_a_continuous_primary_is_decided_by_its_mmrm_contrast_then_the_key_secondary(continuous, p_alb, p_meld,
                                                                                     expected):
    mmrm = pd.concat([model_rows(continuous, "ALB", [("Week 24", 2.0, p_alb)]), mmrm_rows(continuous, p_meld)])
    ds = findings.decisions(survival_rows(continuous, p_fisher=0.001), mmrm, continuous)
    assert [d.outcome for d in ds] == expected
    assert [d.endpoint for d in ds] == ["ALB", "MELD"]
    assert ds[0].p_value == p_alb or np.isnan(p_alb)


def test_the_continuous_primary_is_tested_at_its_visit_the_last_by_default(tmp_path):
    rows = [("Week 12", 2.0, 0.001), ("Week 24", 1.0, 0.30)]
    at_24 = load_trial(continuous_trial_file(tmp_path, key=None))
    at_12 = load_trial(continuous_trial_file(tmp_path, visit="WEEK12", key=None))
    empty = survival_rows(at_24, p_fisher=0.5).iloc[:0]
    assert [d.outcome for d in findings.decisions(empty, model_rows(at_24, "ALB", rows), at_24)] == [findings.NOT_MET]
    assert [d.outcome for d in findings.decisions(empty, model_rows(at_12, "ALB", rows), at_12)] == [findings.MET]
    default = dataclasses.replace(at_12, primary_endpoint=dataclasses.replace(at_12.primary_endpoint, visit=None))
    assert default.primary_visit == default.last_visit
    assert findings.mmrm_codes(at_24) == ["ALB"] and findings.mmrm_codes(at_12) == ["ALB"]


def test_continuous_verdicts_state_the_mmrm_estimate_and_no_survival_words(continuous):
    mmrm = pd.concat([model_rows(continuous, "ALB", [("Week 12", 9.0, 0.001), ("Week 24", 2.0, 0.01)]),
                      mmrm_rows(continuous, 0.03)])
    v = report.verdicts(survival_rows(continuous, 0.9).iloc[:0], mmrm, continuous)
    assert v["verdict_primary"] == ("The primary endpoint (change in Albumin from baseline to Week 24) was met (MMRM, "
                                    "two-sided level 0.05): Hepatic artery versus Peripheral vein, difference 2.00 g/L "
                                    "(95% CI 0.00 to 4.00; P = 0.010).")
    assert v["verdict_key"] == ("The key secondary endpoint, the change in MELD score from baseline to Week 24, was "
                                "met (MMRM): Hepatic artery versus Peripheral vein, difference -2.00 points (95% CI "
                                "-4.00 to 0.00; P = 0.030).")
    endpoint = report.summary_numbers(continuous, pd.DataFrame({"TRT01P": []}), "x",
                                      survival_rows(continuous, 0.9).iloc[:0], mmrm)["trial_endpoint"]
    assert endpoint == ("Primary endpoint: change in Albumin from baseline to Week 24, tested by the MMRM contrast at "
                        "Week 24 at two-sided level 0.05; key secondary endpoint: change in MELD score to Week 24, "
                        "tested only if the primary endpoint is met.")
    for text in (v["verdict"], endpoint, report.key_results_notes(continuous)):
        assert not {"survival", "horizon", "Fisher", "day 168"} & set(text.replace(",", " ").replace(".", " ").split())
    not_met = report.verdicts(survival_rows(continuous, 0.001).iloc[:0],
                              pd.concat([model_rows(continuous, "ALB", [("Week 24", 0.5, 0.4)]),
                                         mmrm_rows(continuous, 0.001)]), continuous)
    assert "was not met (MMRM" in not_met["verdict_primary"]
    assert "was not tested confirmatorily, because the primary endpoint was not met" in not_met["verdict_key"]
    missing = report.verdicts(survival_rows(continuous, 0.001).iloc[:0], mmrm_rows(continuous, 0.001), continuous)
    assert missing["verdict_primary"].endswith("could not be assessed (MMRM, two-sided level 0.05): not estimable.")


def test_a_log_scale_continuous_primary_is_a_ratio_of_geometric_means_back_transformed_once(tmp_path):
    tbil = load_trial(continuous_trial_file(tmp_path, code="TBIL", key=None))
    mmrm = model_rows(tbil, "TBIL", [("Week 24", 0.8, 0.049)], scale=outcomes.LOG_SCALE)
    v = report.verdicts(survival_rows(tbil, 0.5).iloc[:0], mmrm, tbil)
    assert v["verdict"] == ("The primary endpoint (change in Total bilirubin from baseline to Week 24) was met (MMRM, "
                            "two-sided level 0.05): Hepatic artery versus Peripheral vein, ratio of geometric means "
                            "0.80 (95% CI 0.64 to 1.00; P = 0.049).")
    assert "ratio of geometric means" in pipeline.trial_markdown(tbil)


def test_key_results_list_a_continuous_primary_as_the_primary(adam, export, continuous):
    adlb, adsl = adam["adlb"], adam["adsl"]
    mmrm = outcomes.mmrm_table(adlb, continuous, adsl)
    holm = outcomes.secondary_holm(mmrm, continuous)
    assert "ALB" not in set(holm["PARAMCD"]) and len(holm) == len(continuous.endpoints) - 1
    ae = safety.adverse_event_results(safety.build_adae(export, adsl, continuous),
                                      safety.deaths(export, adsl, continuous), adsl, continuous)
    key = findings.key_results(pd.DataFrame(columns=["PARAMCD"]), mmrm, holm, ae, continuous)
    assert key["ROLE"].drop_duplicates().tolist() == ["primary", "key secondary", "secondary", "safety"]
    primary = key[key["ROLE"] == "primary"]
    alb = findings.mmrm_row(mmrm, "ALB", "Week 24")
    assert primary["ENDPOINT"].tolist() == ["ALB"] and primary["ESTIMATE"].iloc[0] == alb["estimate"]
    assert primary["PVALUE"].iloc[0] == alb["p_value"] and primary["ANALYSIS"].iloc[0].endswith("at Week 24")
    assert "ALB" not in key.loc[key["ROLE"] != "primary", "ENDPOINT"].tolist()
    shown = report.key_results_table(key, continuous, arm_header(adsl, continuous))
    assert shown["Finding"].iloc[0] == "Primary: Albumin (g/L), change to Week 24: difference"
    assert shown["P"].iloc[0] == f"{alb['p_value']:.3f}"
    assert not shown["Finding"].str.contains("survival|horizon|Fisher").any()
    text = report.key_results_csv(key)["TEXT"]
    assert set(text) <= set(shown.drop(columns="Finding").to_numpy().ravel()) and "" not in set(text)
    f = Results(None, adsl, adlb, adam["adtte"], continuous).findings
    assert f.survival.empty and sorted(set(f.mmrm["PARAMCD"])) == ["ALB", "MELD"]
    decided = findings.decisions(f.survival, f.mmrm, continuous)
    assert decided[0].p_value == pytest.approx(alb["p_value"], abs=1e-12)
    assert report.verdicts(f.survival, f.mmrm, continuous)["verdict_primary"].endswith(
        f"difference {alb['estimate']:.2f} g/L (95% CI {alb['lower']:.2f} to {alb['upper']:.2f}; "
        f"P = {alb['p_value']:.3f}).")


def test_the_trial_page_describes_a_continuous_primary(continuous):
    page = pipeline.trial_markdown(continuous)
    line = next(x for x in page.splitlines() if x.startswith("**Primary endpoint**"))
    assert line == ("**Primary endpoint**: Change in alb to week 24: the change in Albumin from baseline to Week 24, "
                    "analysed by the MMRM contrast at that visit (difference, experimental arm against control), at "
                    "two-sided level 0.05.")
    assert "The primary endpoint is the change in Albumin from baseline to Week 24. The key secondary endpoint" in page
    others = page.split("The other secondary endpoints are ")[1].split(", at")[0]
    assert "Albumin" not in others and "MELD" not in others and "Total bilirubin" in others
    assert not {"horizon", "Fisher", "transplantation"} & set(line.replace(";", " ").split())


def test_a_continuous_primary_refuses_a_survival_test_in_the_trial_file(tmp_path):
    with pytest.raises(TrialFileError, match=r"analysis_plan.primary_test \(fisher\) applies to a time-to-event "
                                             r"primary endpoint only"):
        load_trial(continuous_trial_file(tmp_path, primary_test=True))
    with pytest.raises(TrialFileError, match="must be one of the endpoints"):
        load_trial(continuous_trial_file(tmp_path, code="OS"))


# ------------------------------------------------------------------ one computation per build

def _count_fits(monkeypatch) -> list:
    """Count the model fits of the outcomes and survival analyses in this process."""
    calls = []
    for module, name in ((outcomes, "outcome_results"), (survival, "survival_results")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, real=real, name=name, **k: calls.append(name) or real(*a, **k))
    return calls


def test_a_chapter_alone_computes_the_findings_once_and_keeps_them(monkeypatch):
    calls = _count_fits(monkeypatch)
    c = chapter.load_cohort()
    assert "results" not in c.__dict__ and not calls
    first = report.chapter_verdict(c)
    assert report.chapter_verdict(c) == first and sorted(calls) == ["outcome_results", "survival_results"]


VERDICT_CHAPTER = """
import helpers.chapter as chapter
from pathlib import Path
from helpers.analysis import outcomes, survival
from helpers.report.findings import chapter_verdict

def refuse(*args, **kwargs):
    raise AssertionError("a chapter fitted a model again")

outcomes.outcome_results = outcomes.mmrm_table = survival.survival_results = refuse
c = chapter.load_cohort(cohort_file=cohort_file)
Path(output_dir, "results", "{name}.txt").write_text(chapter_verdict(c))
"""


def test_a_build_computes_the_verdict_once_and_its_chapters_read_it(tmp_path, monkeypatch):
    """The pipeline runs the analyses once, before the chapters; a chapter that tried to fit them again fails."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for name in ("01_one", "02_two"):
        write_tiny_notebook(nbs / f"{name}.ipynb", VERDICT_CHAPTER.replace("{name}", name))
    calls = _count_fits(monkeypatch)
    pipeline.run(build_dir=tmp_path / "_build", notebook_dir=nbs, log=lambda *_: None)
    assert sorted(calls) == ["outcome_results", "survival_results"]
    c = chapter.load_cohort()
    expected = report.chapter_verdict(c)
    for name in ("01_one", "02_two"):
        assert (tmp_path / "_build" / "results" / f"{name}.txt").read_text() == expected


def test_a_rebuild_of_the_same_inputs_takes_the_analyses_kept_by_the_last(tmp_path, monkeypatch):
    """A build in which only a notebook changed fits no model: it takes the analyses its build folder kept for the
    same inputs, and writes the same ARD; a new input (another seed) computes them again."""
    nbs, build_dir, logs = tmp_path / "notebooks", tmp_path / "_build", []
    nbs.mkdir()
    write_tiny_notebook(nbs / "01_one.ipynb", VERDICT_CHAPTER.replace("{name}", "01_one"))
    pipeline.run(build_dir=build_dir, notebook_dir=nbs, log=lambda *_: None)
    first = (build_dir / "results" / "ard.csv").read_bytes()
    calls = _count_fits(monkeypatch)
    write_tiny_notebook(nbs / "01_one.ipynb", VERDICT_CHAPTER.replace("{name}", "01_one") + "\n# edited\n")
    pipeline.run(build_dir=build_dir, notebook_dir=nbs, log=logs.append)
    assert calls == [] and any("kept from an earlier build of the same inputs" in m for m in logs)
    assert (build_dir / "results" / "ard.csv").read_bytes() == first
    pipeline.run(build_dir=build_dir, notebook_dir=nbs, log=lambda *_: None, seed=7)
    assert sorted(calls) == ["outcome_results", "survival_results"]
    assert len(list((pipeline.trees_dir(build_dir) / pipeline.CACHE / "results").glob("*.pickle"))) == 2


def test_the_design_simulates_a_continuous_primary_by_its_own_analysis(continuous, trial):
    """The design chapter simulates the trial's own primary analysis: for a continuous primary, the MMRM contrast at
    its visit, then the key secondary in the fixed sequence; a time-to-event trial's primary stays time to event."""
    from helpers.analysis import design

    assert design.is_continuous(continuous) and not design.is_continuous(trial)
    assert design.design_trial(continuous).primary_endpoint == continuous.primary_endpoint
    data = design.simulate_cohort(continuous, design.Scenario(), np.random.default_rng(1))
    assert set(data["adlb"]["PARAMCD"]) == {"ALB", "MELD"}
    row = design.analyse_cohort(continuous, data)
    mmrm = findings.key_mmrm(data["adlb"], data["adsl"], continuous)
    assert row["primary_p"] == findings.primary_p(pd.DataFrame(), mmrm, continuous)
    assert row["primary_outcome"] in (findings.MET, findings.NOT_MET) and "key_outcome" in row
