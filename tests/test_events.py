"""Event and censoring sources from the trial file (issue 17): a trial's intercurrent events (here a constructed
kidney-failure trial) reach ADSL, ADTTE and every sentence by their trial-file code and label; a trial that declares
none mentions none; a trial that recorded no deaths says so instead of printing empty estimates."""
from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml

from helpers import paths, pipeline
from helpers.analysis import consort, findings, survival
from helpers.data.adam import build_adam, build_adtte, intercurrent_columns
from helpers.data.loading import ExportError, load_export, read_raw
from helpers.data.schema import export_spec
from helpers.data.simulation import simulate_export, write_export
from helpers.report import findings as findings_report
from helpers.report import sensitivity as sensitivity_report
from helpers.report import survival as survival_report
from helpers.report.prose import early_ends_text
from helpers.trial import TrialFileError, load_trial

KIDNEY = {"events": {"intercurrent": [{"code": "KIDNEY_FAILURE", "label": "Kidney failure"}]},
          "time_to_event": [
              {"code": "OS", "label": "Overall survival", "events": ["DEATH"], "censors": ["KIDNEY_FAILURE"]},
              {"code": "KFS", "label": "Kidney-failure-free survival", "events": ["DEATH", "KIDNEY_FAILURE"]}]}


def _trial_file(folder, **changes):
    raw = yaml.safe_load((paths.TRIALS / "DEMO-ORAL.yaml").read_text(encoding="utf-8"))
    raw.update(changes)
    if "events" in changes:  # the simulation's event rates are of DEMO-ORAL's events
        raw["simulation"].pop("event_rates", None)
    raw["primary_endpoint"] = {**raw["primary_endpoint"], "code": "OS", "label": "Overall survival"}
    path = folder / "trial.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_trial(path)


@pytest.fixture(scope="module")
def kidney(tmp_path_factory):
    return _trial_file(tmp_path_factory.mktemp("kidney"), **KIDNEY)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The same trial declaring no intercurrent event: overall survival, death the only event."""
    return _trial_file(tmp_path_factory.mktemp("plain"), events={"intercurrent": []},
                       time_to_event=[{"code": "OS", "label": "Overall survival", "events": ["DEATH"]}])


@pytest.fixture(scope="module")
def kidney_export(kidney, tmp_path_factory):
    """A simulated export of the kidney trial in which the first participant who died had kidney failure instead
    (the simulator's own intercurrent rows, outside this trial's vocabulary, are relabelled too)."""
    frames = simulate_export(kidney, realistic=False)
    ev = frames["events"]
    simulated = ev["event_type"].isna() | ev["event_type"].astype(object).eq("TRANSPLANT")  # not in this trial's vocabulary
    ev["event_type"] = ev["event_type"].astype(object)
    first = ev.index[ev["event_type"] == "DEATH"][0]
    relabel = simulated | (ev.index == first)
    ev.loc[relabel, "event_type"] = "KIDNEY_FAILURE"
    ev.loc[relabel, "term"] = "kidney failure"
    folder = tmp_path_factory.mktemp("kidney_export")
    write_export(frames, folder, kidney)
    return folder, ev.at[first, "subject_id"]


def test_the_trial_file_declares_the_event_vocabulary(kidney, plain):
    assert kidney.end_of_follow_up_codes == ["DEATH", "KIDNEY_FAILURE", "WITHDRAWAL", "COMPLETED"]
    assert kidney.early_end_codes == ["DEATH", "KIDNEY_FAILURE", "WITHDRAWAL"]
    assert kidney.lead_tte.code == "OS" and kidney.censors("KIDNEY_FAILURE")
    assert kidney.counts_as_event("KIDNEY_FAILURE", kidney.tte("KFS"))
    assert intercurrent_columns(kidney) == {"KIDNEY_FAILURE": ("ICE1DT", "ICE1FL")}
    assert intercurrent_columns(plain) == {}
    allowed = next(c for c in export_spec(kidney)["events"].columns if c.name == "event_type").allowed_values(kidney)
    assert allowed == ("AE", "DEATH", "KIDNEY_FAILURE", "WITHDRAWAL", "COMPLETED")


def test_a_time_to_event_endpoint_names_only_declared_event_types(tmp_path):
    bad = {"time_to_event": [{"code": "OS", "label": "Overall survival", "events": ["DEATH"], "censors": ["DIALYSIS"]}]}
    with pytest.raises(TrialFileError, match=r"time_to_event OS: 'DIALYSIS' is not DEATH or an intercurrent event"):
        _trial_file(tmp_path, **bad)
    with pytest.raises(TrialFileError, match=r"primary_endpoint: unknown key\(s\) transplant"):
        raw = yaml.safe_load((paths.TRIALS / "DEMO-ORAL.yaml").read_text(encoding="utf-8"))
        raw["primary_endpoint"]["transplant"] = "censor"
        (tmp_path / "old.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
        load_trial(tmp_path / "old.yaml")


def _adsl(**dates):
    base = {"STUDYID": "T", "USUBJID": ["T-1"], "TRT01P": ["A"], "TRT01PN": [1],
            "RANDDT": pd.to_datetime(["2025-01-01"]), "DTHDT": pd.NaT, "ICE1DT": pd.NaT,
            "LSTALVDT": pd.to_datetime(["2025-03-01"]), "EOSSTT": ["DISCONTINUED"], "DCUTDT": pd.NaT}
    return pd.DataFrame(base | {k: pd.to_datetime(v) for k, v in dates.items()})


@pytest.mark.parametrize("dates, os_, kfs", [
    # kidney failure on day 41 (2025-02-10), death on day 60: OS censored at kidney failure; KFS event at it
    ({"ICE1DT": ["2025-02-10"], "DTHDT": ["2025-03-01"]}, (41, 1, "KIDNEY FAILURE"), (41, 0, "KIDNEY FAILURE")),
    ({"ICE1DT": ["2025-02-10"]}, (41, 1, "KIDNEY FAILURE"), (41, 0, "KIDNEY FAILURE")),
    # death first (day 31), kidney failure later: an event for both
    ({"DTHDT": ["2025-01-31"], "ICE1DT": ["2025-02-10"]}, (31, 0, "DEATH"), (31, 0, "DEATH")),
    # the same day: the censoring is not earlier than the death (OS event); KFS takes the first listed (DEATH)
    ({"DTHDT": ["2025-01-31"], "ICE1DT": ["2025-01-31"]}, (31, 0, "DEATH"), (31, 0, "DEATH")),
    ({}, (60, 1, "LAST KNOWN ALIVE"), (60, 1, "LAST KNOWN ALIVE")),
])
def test_adtte_takes_its_events_and_censorings_from_the_trial_file(kidney, dates, os_, kfs):
    adtte = build_adtte(_adsl(**dates), kidney).set_index("PARAMCD")
    assert list(adtte.index) == ["OS", "KFS"]
    assert adtte.loc["KFS", "PARAM"] == "Kidney-failure-free survival (days)"
    for paramcd, expected in (("OS", os_), ("KFS", kfs)):
        row = adtte.loc[paramcd]
        assert (int(row["AVAL"]), int(row["CNSR"]), row["EVNTDESC"]) == expected


def test_a_kidney_failure_export_reaches_adsl_adtte_and_the_flow(kidney, kidney_export):
    folder, subject = kidney_export
    export = load_export(folder, kidney)
    adam = build_adam(export, kidney)
    sl = adam["adsl"].set_index("SUBJID")
    assert (sl.at[subject, "ICE1FL"], sl.at[subject, "DTHFL"], sl.at[subject, "DCSREAS"]) == ("Y", "N", "KIDNEY FAILURE")
    assert not {"LTXDT", "LTXFL"} & set(adam["adsl"].columns)
    usubjid = sl.at[subject, "USUBJID"]
    tte = adam["adtte"].set_index(["USUBJID", "PARAMCD"])
    assert tte.loc[(usubjid, "OS"), "EVNTDESC"] == "KIDNEY FAILURE" and tte.loc[(usubjid, "OS"), "CNSR"] == 1
    assert tte.loc[(usubjid, "KFS"), "CNSR"] == 0
    flow = consort.consort_flow(export, kidney, adam["adsl"]).set_index("box")
    arm = sl.at[subject, "ARMCD"]
    assert flow.at[f"discontinued:{arm}:kidney_failure", "label"] == "Kidney failure"
    assert flow.at[f"discontinued:{arm}:kidney_failure", "n"] >= 1


def test_an_export_with_an_undeclared_event_type_is_refused(kidney, kidney_export, tmp_path):
    folder, _ = kidney_export
    events = (folder / "events.csv").read_text(encoding="utf-8")
    for f in folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "events.csv").write_text(events.replace("KIDNEY_FAILURE", "TRANSPLANT", 1), encoding="utf-8")
    with pytest.raises(ExportError, match="TRANSPLANT"):
        load_export(tmp_path, kidney)


def test_every_sentence_names_the_trials_own_event(kidney, kidney_export):
    folder, _ = kidney_export
    adam = build_adam(load_export(folder, kidney), kidney)
    results = survival.survival_results(adam["adtte"], adam["adsl"], kidney)
    assert list(dict.fromkeys(results["PARAMCD"])) == ["OS", "KFS"]
    numbers = survival_report.chapter_numbers(results, adam["adsl"], kidney, "synthetic")
    assert numbers["lead_censoring"].startswith("Kidney failure is censored at its date")
    assert numbers["other_endpoints"] == ("Kidney-failure-free survival (death or kidney failure, whichever came "
                                          "first) is reported as a further endpoint.")
    texts = [*map(str, numbers.values()), early_ends_text(kidney), pipeline._primary_rules(kidney),
             sensitivity_report.ice_handling_text(kidney),
             survival_report.show_intercurrent_events(adam["adsl"], adam["adlb"], kidney)._repr_markdown_(),
             survival_report.show_event_counts(adam["adtte"], adam["adsl"], kidney)._repr_markdown_(),
             survival_report.show_summary(results, kidney, "KFS")._repr_markdown_()]
    assert early_ends_text(kidney) == "death, kidney failure or withdrawal"
    assert pipeline._primary_rules(kidney).endswith("Kidney failure censors follow-up for overall survival")
    assert "Kidney failure" in texts[-2] and ":name: tab-kfs-summary" in texts[-1]
    assert not [t for t in texts if re.search("transplant", t, re.IGNORECASE)]


def test_a_trial_without_intercurrent_events_mentions_none(plain):
    assert early_ends_text(plain) == "death or withdrawal"
    assert pipeline._primary_rules(plain) == f"horizon {plain.horizon_days} days"
    assert survival_report.censoring_text(plain.lead_tte, plain) == (
        "Withdrawal and loss to follow-up are censored at the last date the participant was known alive.")
    assert sensitivity_report.ice_handling_text(plain) == "Withdrawal is treated as missing and left out of the ranking."
    assert survival.causes(plain) == ["Death", "Withdrawal"]
    assert "intercurrent" not in pipeline.trial_markdown(plain).lower()


@pytest.fixture(scope="module")
def no_deaths(trial, clean_dir, tmp_path_factory):
    """The clean export of NCT06984497 in which every death is a withdrawal instead: a trial that recorded no deaths."""
    folder = tmp_path_factory.mktemp("no_deaths")
    for f in clean_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    ev = read_raw(folder / "events.csv")
    dead = ev["event_type"] == "DEATH"
    assert dead.any()
    ev.loc[dead, ["event_type", "term"]] = ["WITHDRAWAL", "withdrew consent"]
    ev.to_csv(folder / "events.csv", index=False, lineterminator="\n")
    return build_adam(load_export(folder, trial), trial)


def test_no_deaths_the_survival_chapter_says_so(trial, no_deaths):
    adtte, adsl = no_deaths["adtte"], no_deaths["adsl"]
    assert (adsl["DTHFL"] == "N").all() and survival.no_events(adtte, trial)
    results = survival.survival_results(adtte, adsl, trial)
    table = survival_report.summary_table(results, "OS", trial)
    assert table.to_dict("records") == [{"Analysis": "No deaths were recorded; survival estimates and tests are not "
                                                     "shown (not estimable)", "Arm or comparison": "all arms",
                                         "Estimate (95% CI)": "not estimable", "P value": "not estimable",
                                         "Events / N": f"0 / {len(adsl)}"}]
    numbers = survival_report.chapter_numbers(results, adsl, trial, "synthetic")
    for key in ("lead_surv", "lead_diff", "lead_logrank", "lead_hr", "lead_fisher"):
        assert numbers[key] == "not estimable: no deaths were recorded"
    assert numbers["lead_events"] == "0 deaths" and numbers["lead_caution"] == ""


def test_no_deaths_the_primary_verdict_is_not_met(trial, no_deaths):
    """No deaths in either arm: Fisher's exact test on the all-alive table gives P = 1, so the primary endpoint is not
    met (no difference shown), and the sentence says why rather than quoting 100% survival with no interval."""
    adtte, adsl = no_deaths["adtte"], no_deaths["adsl"]
    surv = survival.survival_results(adtte, adsl, trial, paramcds=(trial.primary_endpoint.code,))
    decision = findings.decisions(surv, pd.DataFrame({"PARAMCD": [], "AVISIT": []}), trial)[0]
    assert decision.outcome == findings.NOT_MET and decision.p_value == pytest.approx(1.0)
    sentence = findings_report.primary_sentence(decision, surv, pd.DataFrame(), trial)
    assert sentence.startswith("The primary endpoint (overall survival to week 24) was not met: no deaths were "
                               f"recorded in any arm by day {trial.horizon_days}")
    assert "P = 1.000" in sentence
