"""Eligibility rules: one test per criterion of the trial file, the age bounds, and the synthetic screening log."""
from dataclasses import replace

import pandas as pd
import pytest

from helpers.analysis import eligibility
from helpers.trial import Criterion, load_trial

TRIAL = load_trial("NCT06984497")
EXCLUSIONS = [c.column for c in TRIAL.eligibility if c.kind == "exclusion"]


def person(**changes) -> pd.DataFrame:
    """One screened person who meets every criterion, with ``changes`` applied."""
    row = {"screening_id": "S001", "age": 50, "sex": "M", "esld": "Y", "consent": "Y", **{f: "N" for f in EXCLUSIONS}}
    row.update(changes)
    frame = pd.DataFrame([row])
    frame["age"] = frame["age"].astype("Int64")
    return frame


def failed(frame, trial=TRIAL) -> list[str]:
    result = eligibility.evaluate(frame, trial).iloc[0]
    return [c.name for c in eligibility.criteria(trial) if result[c.name]]


def test_fourteen_criteria_in_protocol_order():
    rules = eligibility.criteria(TRIAL)
    assert [(c.kind, c.number) for c in rules] == [("inclusion", i) for i in (1, 2, 3)] + \
        [("exclusion", i) for i in range(1, 12)]
    assert [c.name for c in rules] == ["age", "esld", "consent"] + EXCLUSIONS
    assert [c.name for c in rules if c.consent] == ["consent"]
    assert rules[0].label == "Age 18 to 80 years"


def test_criteria_follow_another_trial_file():
    demo = load_trial("DEMO-ORAL")
    rules = eligibility.criteria(demo)
    assert rules[0].title == "Inclusion 1: Age 18 to 75 years"
    assert [c.name for c in rules[1:]] == [c.column for c in demo.eligibility]
    assert failed(pd.DataFrame([{"screening_id": "S1", "age": 76, "decompensated_cirrhosis": "Y", "consent": "Y",
                                 "hcc": "N", "prior_transplant": "N", "renal_failure": "N",
                                 "pregnant_or_breastfeeding": "N"}]), demo) == ["age"]


def test_no_age_range_means_no_age_criterion():
    trial = replace(TRIAL, age_range=None, eligibility=(Criterion("ok", "inclusion", 1, "Ok"),
                                                        Criterion("bad", "exclusion", 1, "Bad")))
    frame = pd.DataFrame({"screening_id": ["A", "B", "C"], "age": [5, 50, 50],
                          "ok": ["Y", "N", "Y"], "bad": ["N", "N", "Y"]})
    result = eligibility.evaluate(frame, trial)
    assert [c.name for c in eligibility.criteria(trial)] == ["ok", "bad"]
    assert result["status"].tolist() == ["eligible", "not meeting criteria", "not meeting criteria"]
    assert "declined to participate" not in set(result["status"])


def test_missing_flags_do_not_crash_and_count_as_not_yes():
    frame = pd.concat([person(screening_id="S1", esld=pd.NA), person(screening_id="S2", hiv=pd.NA),
                       person(screening_id="S3", consent=None)], ignore_index=True)
    frame["esld"] = frame["esld"].astype("string")
    result = eligibility.evaluate(frame, TRIAL).set_index("screening_id")
    assert result.at["S1", "esld"] and result.at["S1", "status"] == "not meeting criteria"
    assert not result.at["S2", "hiv"] and result.at["S2", "eligible"]
    assert not result.at["S3", "eligible"] and result.at["S3", "status"] == "consent not recorded"


def test_person_meeting_every_criterion_is_eligible():
    result = eligibility.evaluate(person(), TRIAL).iloc[0]
    assert result["eligible"] and result["status"] == "eligible" and result["reasons"] == ""


@pytest.mark.parametrize("age,eligible", [(17, False), (18, True), (50, True), (80, True), (81, False)])
def test_age_bounds_inclusive(age, eligible):
    assert (failed(person(age=age)) == []) is eligible
    if not eligible:
        assert failed(person(age=age)) == ["age"]


def test_missing_age_is_not_eligible():
    assert failed(person(age=pd.NA)) == ["age"]


def test_not_esld():
    assert failed(person(esld="N")) == ["esld"]


def test_declined_consent_reported_as_declined():
    result = eligibility.evaluate(person(consent="N"), TRIAL).iloc[0]
    assert failed(person(consent="N")) == ["consent"]
    assert result["status"] == "declined to participate" and result["primary_reason"] == ""


@pytest.mark.parametrize("flag", EXCLUSIONS)
def test_each_exclusion(flag):
    assert failed(person(**{flag: "Y"})) == [flag]
    result = eligibility.evaluate(person(**{flag: "Y"}), TRIAL).iloc[0]
    assert result["status"] == "not meeting criteria" and result["reasons"].startswith("Exclusion ")


def test_several_reasons_and_first_one_primary():
    frame = person(age=85, hiv="Y", consent="N")
    result = eligibility.evaluate(frame, TRIAL).iloc[0]
    assert failed(frame) == ["age", "consent", "hiv"]
    assert result["status"] == "not meeting criteria"
    assert result["primary_reason"] == "Inclusion 1: Age 18 to 80 years"
    assert result["reasons"].count(";") == 2


def test_synthetic_screening_matches_hand_count(export):
    sc = export["screening"]
    by_hand = (sc["age"].between(18, 80) & (sc["esld"] == "Y") & (sc["consent"] == "Y")
               & (sc[EXCLUSIONS] == "N").all(axis=1))
    result = eligibility.evaluate(sc, TRIAL)
    assert result["eligible"].tolist() == by_hand.tolist()
    assert set(result.loc[result["eligible"], "screening_id"]) == set(export["randomization"]["screening_id"])


def test_criteria_counts(export):
    result = eligibility.evaluate(export["screening"], TRIAL)
    counts = eligibility.criteria_counts(result, TRIAL).set_index("Criterion")
    sc = export["screening"]
    assert counts.loc["Inclusion 1: Age 18 to 80 years", "Failed"] == int((~sc["age"].between(18, 80)).sum())
    assert counts.loc["Inclusion 3: Signed informed consent", "Failed"] == int((sc["consent"] == "N").sum())
    assert (counts["Only reason"] <= counts["Failed"]).all()


def test_criteria_counts_hand_checked():
    trial = replace(TRIAL, age_range=(18, 80), eligibility=(Criterion("consent", "inclusion", 2, "Consent", True),
                                                            Criterion("hiv", "exclusion", 1, "HIV")))
    frame = pd.DataFrame({"screening_id": list("ABCD"), "age": [17, 30, 30, 90],
                          "consent": ["Y", "N", "Y", "N"], "hiv": ["N", "N", "Y", "Y"]})
    counts = eligibility.criteria_counts(eligibility.evaluate(frame, trial), trial)
    assert counts["Criterion"].tolist() == ["Inclusion 1: Age 18 to 80 years", "Inclusion 2: Consent", "Exclusion 1: HIV"]
    assert counts["Failed"].tolist() == [2, 2, 2]
    assert counts["Only reason"].tolist() == [1, 1, 1]
