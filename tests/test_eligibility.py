"""Eligibility rules: one test per protocol criterion, the age bounds, and the synthetic screening log."""
import pandas as pd
import pytest

from helpers import eligibility
from helpers.schema import load_schema

EXCLUSIONS = [c.name for c in load_schema()["screening"].columns if "(exclusion" in c.meaning]


def person(**changes) -> pd.DataFrame:
    """One screened person who meets every criterion, with ``changes`` applied."""
    row = {"screening_id": "S001", "age": 50, "sex": "M", "esld": "Y", "consent": "Y", **{f: "N" for f in EXCLUSIONS}}
    row.update(changes)
    frame = pd.DataFrame([row])
    frame["age"] = frame["age"].astype("Int64")
    return frame


def failed(frame) -> list[str]:
    result = eligibility.evaluate(frame).iloc[0]
    return [c.name for c in eligibility.criteria() if result[c.name]]


def test_fourteen_criteria_in_protocol_order():
    rules = eligibility.criteria()
    assert [(c.kind, c.number) for c in rules] == [("inclusion", i) for i in (1, 2, 3)] + \
        [("exclusion", i) for i in range(1, 12)]
    assert len(EXCLUSIONS) == 11 and {c.name for c in rules} >= set(EXCLUSIONS)


def test_person_meeting_every_criterion_is_eligible():
    result = eligibility.evaluate(person()).iloc[0]
    assert result["eligible"] and result["status"] == "eligible" and result["reasons"] == ""


@pytest.mark.parametrize("age,eligible", [(17, False), (18, True), (50, True), (80, True), (81, False)])
def test_age_bounds_inclusive(age, eligible):
    assert (failed(person(age=age)) == []) is eligible
    if not eligible:
        assert failed(person(age=age)) == ["age_18_80"]


def test_missing_age_is_not_eligible():
    assert failed(person(age=pd.NA)) == ["age_18_80"]


def test_not_esld():
    assert failed(person(esld="N")) == ["esld"]


def test_declined_consent_reported_as_declined():
    result = eligibility.evaluate(person(consent="N")).iloc[0]
    assert failed(person(consent="N")) == ["consent"]
    assert result["status"] == "declined to participate" and result["primary_reason"] == ""


@pytest.mark.parametrize("flag", EXCLUSIONS)
def test_each_exclusion(flag):
    assert failed(person(**{flag: "Y"})) == [flag]
    result = eligibility.evaluate(person(**{flag: "Y"})).iloc[0]
    assert result["status"] == "not meeting criteria" and result["reasons"].startswith("Exclusion ")


def test_several_reasons_and_first_one_primary():
    frame = person(age=85, hiv="Y", consent="N")
    result = eligibility.evaluate(frame).iloc[0]
    assert failed(frame) == ["age_18_80", "consent", "hiv"]
    assert result["status"] == "not meeting criteria"
    assert result["primary_reason"] == "Inclusion 1: Age 18 to 80 years"
    assert result["reasons"].count(";") == 2


def test_synthetic_screening_matches_hand_count(export):
    sc = export["screening"]
    by_hand = (sc["age"].between(18, 80) & (sc["esld"] == "Y") & (sc["consent"] == "Y")
               & (sc[EXCLUSIONS] == "N").all(axis=1))
    result = eligibility.evaluate(sc)
    assert result["eligible"].tolist() == by_hand.tolist()
    assert set(result.loc[result["eligible"], "screening_id"]) == set(export["randomization"]["screening_id"])


def test_criteria_counts(export):
    result = eligibility.evaluate(export["screening"])
    counts = eligibility.criteria_counts(result).set_index("Criterion")
    sc = export["screening"]
    assert counts.loc["Inclusion 1: Age 18 to 80 years", "Failed"] == int((~sc["age"].between(18, 80)).sum())
    assert counts.loc["Inclusion 3: Signed informed consent", "Failed"] == int((sc["consent"] == "N").sum())
    assert (counts["Only reason"] <= counts["Failed"]).all()
