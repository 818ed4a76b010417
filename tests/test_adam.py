"""ADaM derivations: hand-checked rows from the raw files and tiny hand-built cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.data.adam import build_adtte, derive_base_chg, study_day
from helpers.data.loading import read_raw
from helpers.data.schema import load_schema


def test_study_day_has_no_day_zero():
    ref = pd.to_datetime(pd.Series(["2025-08-15"] * 4))
    dates = pd.to_datetime(pd.Series(["2025-08-15", "2025-08-14", "2025-09-12", "2025-08-01"]))
    assert study_day(dates, ref).tolist() == [1, -1, 29, -14]


def test_base_chg_pchg_on_hand_values():
    adlb = pd.DataFrame({
        "USUBJID": ["A", "A", "A", "B", "B"], "PARAMCD": ["TBIL"] * 5, "AVISITN": [0, 4, 12, 4, 12],
        "AVAL": [50.0, 40.0, 75.0, 30.0, 20.0], "ABLFL": ["Y", "", "", "", ""]})
    out = derive_base_chg(adlb)
    assert out["BASE"].tolist()[:3] == [50.0, 50.0, 50.0]
    assert np.isnan(out["CHG"][0])
    assert out["CHG"].tolist()[1:3] == [-10.0, 25.0]
    assert out["PCHG"].tolist()[1:3] == [-20.0, 50.0]
    assert out["BASE"][3:].isna().all() and out["CHG"][3:].isna().all()


def test_adsl_one_row_per_randomized_with_hand_counts(adam, trial, clean_dir):
    adsl = adam["adsl"]
    rand = read_raw(clean_dir / "randomization.csv")
    events = read_raw(clean_dir / "events.csv")
    assert len(adsl) == len(rand) == adsl["USUBJID"].nunique()
    assert adsl.groupby("ARMCD").size().to_dict() == rand.groupby("arm").size().to_dict()
    assert set(adsl.loc[adsl["DTHFL"] == "Y", "SUBJID"]) == set(events.loc[events["event_type"] == "DEATH", "subject_id"])
    assert (adsl["TRT01P"] == adsl["ARMCD"].map(trial.arm_labels)).all()


def test_adlb_rows_match_raw_labs_by_hand(adam, trial, clean_dir):
    """BASE and CHG for every lab endpoint of one participant, recomputed from labs.csv."""
    labs = read_raw(clean_dir / "labs.csv")
    sid = labs["subject_id"].iloc[0]
    mine = labs[labs["subject_id"] == sid].set_index("visit")
    adlb = adam["adlb"]
    for e in trial.lab_endpoints:
        rows = adlb[(adlb["USUBJID"] == f"{trial.id}-{sid}") & (adlb["PARAMCD"] == e.code)].set_index("AVISITN")
        base = float(mine.loc["BASELINE", e.code.lower()])
        for v in trial.followup_visits:
            if v.code in mine.index:
                value = float(mine.loc[v.code, e.code.lower()])
                assert rows.loc[v.week, "AVAL"] == value
                assert rows.loc[v.week, "BASE"] == base
                assert rows.loc[v.week, "CHG"] == pytest.approx(value - base)
        assert rows.loc[0, "ABLFL"] == "Y" and np.isnan(rows.loc[0, "CHG"])


def test_adlb_derived_scores_match_scores_module(adam, clean_dir):
    from helpers.scores import liver as scores

    labs = read_raw(clean_dir / "labs.csv").iloc[0]
    meld = scores.meld(float(labs["tbil"]), float(labs["inr"]), float(labs["creat"]))
    adlb = adam["adlb"]
    row = adlb[(adlb["USUBJID"].str.endswith(labs["subject_id"])) & (adlb["PARAMCD"] == "MELD") & (adlb["AVISITN"] == 0)]
    assert row["AVAL"].item() == meld


def _adsl(**cols):
    base = {"STUDYID": "T", "USUBJID": ["T-1"], "TRT01P": ["A"], "TRT01PN": [1],
            "RANDDT": pd.to_datetime(["2025-01-01"]), "DTHDT": pd.NaT, "ICE1DT": pd.NaT,
            "LSTALVDT": pd.to_datetime(["2025-03-01"]), "EOSSTT": ["DISCONTINUED"], "DCUTDT": pd.NaT}
    base.update({k: v if k == "EOSSTT" else pd.to_datetime(v) for k, v in cols.items()})
    return pd.DataFrame(base)


@pytest.mark.parametrize("cols, os_, tfs", [
    ({"DTHDT": ["2025-01-31"], "LSTALVDT": ["2025-01-31"]}, (31, 0, "DEATH"), (31, 0, "DEATH")),
    ({"LSTALVDT": ["2025-03-01"]}, (60, 1, "LAST KNOWN ALIVE"), (60, 1, "LAST KNOWN ALIVE")),
    ({"ICE1DT": ["2025-02-10"], "LSTALVDT": ["2025-03-01"]}, (41, 1, "LIVER TRANSPLANT"), (41, 0, "LIVER TRANSPLANT")),
    ({"LSTALVDT": ["2025-07-01"]}, (168, 1, "ALIVE AT HORIZON"), (168, 1, "ALIVE AT HORIZON")),
    ({"DTHDT": ["2025-06-30"], "LSTALVDT": ["2025-06-30"]}, (168, 1, "ALIVE AT HORIZON"), (168, 1, "ALIVE AT HORIZON")),
    ({"EOSSTT": ["ONGOING"], "DCUTDT": ["2025-04-01"], "LSTALVDT": ["2025-03-01"]},
     (60, 1, "ONGOING AT DATA CUT-OFF"), (60, 1, "ONGOING AT DATA CUT-OFF")),
    ({"EOSSTT": ["ONGOING"], "DCUTDT": ["2025-02-01"], "LSTALVDT": ["2025-03-01"]},
     (32, 1, "ONGOING AT DATA CUT-OFF"), (32, 1, "ONGOING AT DATA CUT-OFF")),
])
def test_adtte_hand_cases(trial, cols, os_, tfs):
    """Day 1 is randomization; horizon 168 days; OS censored at transplant (trial file); at an interim look,
    a participant in follow-up is censored at the cut-off or last contact, whichever is earlier."""
    adtte = build_adtte(_adsl(**cols), trial).set_index("PARAMCD")
    for paramcd, expected in (("OS", os_), ("TFS", tfs)):
        row = adtte.loc[paramcd]
        assert (int(row["AVAL"]), int(row["CNSR"]), row["EVNTDESC"]) == expected


def test_adtte_events_equal_raw_deaths_within_horizon(adam, trial, clean_dir):
    events = read_raw(clean_dir / "events.csv")
    rand = read_raw(clean_dir / "randomization.csv").set_index("subject_id")
    deaths = events[events["event_type"] == "DEATH"]
    days = (pd.to_datetime(deaths["start_date"]) - pd.to_datetime(deaths["subject_id"].map(rand["rand_date"]))).dt.days + 1
    os_ = adam["adtte"][adam["adtte"]["PARAMCD"] == "OS"]
    assert int((os_["CNSR"] == 0).sum()) == int((days <= trial.primary_endpoint.horizon_days).sum())


def test_written_adam_holds_no_identifier(adam, tmp_path, clean_dir):
    from helpers.data.adam import write_adam

    write_adam(adam, tmp_path)
    screening = read_raw(clean_dir / "screening.csv")
    text = "".join(p.read_text(encoding="utf-8") for p in tmp_path.glob("*.csv"))
    for column in load_schema()["screening"].identifiers:
        for value in screening[column]:
            assert value not in text, f"{column} value found in the analysis data"


def test_derivations_leave_their_input_unchanged(adam, export, trial):
    from helpers.data.adam import derive_base_chg, derive_baseline_covariates, derive_disposition

    adsl, adlb = adam["adsl"], adam["adlb"]
    for derive, args in ((derive_disposition, (adsl, export["events"], trial)), (derive_base_chg, (adlb,)),
                         (derive_baseline_covariates, (adsl, adlb, export["clinical"], trial))):
        frames = [a for a in args if isinstance(a, pd.DataFrame)]
        before = [f.copy() for f in frames]
        derive(*args)
        for f, b in zip(frames, before):
            pd.testing.assert_frame_equal(f, b)


# ------------------------------------------------------------------ derived parameters and covariates from the trial file

def test_egfr_is_derived_from_each_sample_with_the_participants_age_and_sex(trial):
    """eGFR (kidney plug-in) on the trial's panel, creatinine in umol/L: 79.56 umol/L = 0.9 mg/dL; a man of 40 with
    Scr 0.9 has 142 x 0.9938^40 = 110.726 (tests/test_scores.py). Missing creatinine or age: not derivable."""
    import dataclasses

    from helpers.data.adam import derive_scores_by_visit
    egfr_trial = dataclasses.replace(trial, derived_parameters=("EGFR",), baseline_covariates=(), endpoints=tuple(
        e for e in trial.endpoints if e.source != "derived"))
    assert egfr_trial.derived_scores == ["EGFR"]
    labs = pd.DataFrame({"subject_id": ["01-001", "01-001", "01-002"], "visit": ["BASELINE", "WEEK4", "BASELINE"],
                         "lab_date": pd.to_datetime(["2025-01-01", "2025-01-29", "2025-01-02"]),
                         "creat": [79.56, np.nan, 88.4]})
    clinical = pd.DataFrame({"subject_id": pd.Series(dtype=str), "visit": pd.Series(dtype=str),
                             "assessment_date": pd.Series(dtype="datetime64[ns]")})
    people = pd.DataFrame({"SUBJID": ["01-001", "01-002"], "AGE": [40, np.nan], "SEX": ["M", "F"]})
    out = derive_scores_by_visit(labs, clinical, egfr_trial, people)
    assert out["EGFR"].iloc[0] == pytest.approx(110.726, abs=0.001)
    assert out["EGFR__reason"].tolist()[1:] == ["not derivable: creatinine missing", "not derivable: AGE missing"]
    with pytest.raises(ValueError, match="needs the participant variable AGE"):
        derive_scores_by_visit(labs, clinical, egfr_trial)


def test_baseline_covariates_come_from_their_sources(adam, trial, clean_dir):
    """ADSL's covariates follow the trial file: derived (MELD, CPSCORE at baseline, whole numbers), the class of a
    derived parameter (CPCLASS from CPSCORE by its registry classes), a clinical grade at baseline, a screening column."""
    adsl, adlb = adam["adsl"], adam["adlb"]
    sources = {c.code: c.source for c in trial.baseline_covariates}
    assert sources["CPCLASS"] == "class.CPSCORE" and sources["MELD"] == "derived"
    base = adlb[(adlb["ABLFL"] == "Y") & (adlb["PARAMCD"] == "CPSCORE")].set_index("USUBJID")["AVAL"]
    points = adsl["USUBJID"].map(base)
    assert (adsl["CPSCORE"].astype("Float64") == points.astype("Float64")).fillna(True).all()
    expected = np.select([points <= 6, points <= 9, points <= 15], ["A", "B", "C"], "")
    assert (adsl["CPCLASS"].fillna("") == np.where(points.isna(), "", expected)).all()
    clinical = read_raw(clean_dir / "clinical.csv")
    first = clinical[clinical["visit"] == "BASELINE"].drop_duplicates("subject_id").set_index("subject_id")
    assert adsl["ASCITES"].tolist() == adsl["SUBJID"].map(first["ascites"]).tolist()
    screening = read_raw(clean_dir / "screening.csv").set_index("screening_id")
    rand = read_raw(clean_dir / "randomization.csv").set_index("subject_id")
    assert adsl["ETIOLOGY"].tolist() == adsl["SUBJID"].map(rand["screening_id"]).map(screening["etiology"]).tolist()


def _trial_file_error(folder, raw: dict) -> str:
    """The TrialFileError a trial file written from ``raw`` raises (folder/trial.yaml)."""
    import yaml

    from helpers.trial import TrialFileError, load_trial
    (folder / "trial.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(TrialFileError) as err:
        load_trial(folder / "trial.yaml")
    return str(err.value)


def test_trial_file_covariate_sources_are_checked(tmp_path):
    import yaml

    from helpers.trial import load_trial
    raw = yaml.safe_load(open(load_trial().source, encoding="utf-8"))
    raw["baseline_covariates"] += [{"code": "X", "label": "X", "source": "lab.x"},
                                   {"code": "Y", "label": "Y", "type": "categorical", "source": "class.MELD"},
                                   {"code": "Z", "label": "Z", "levels": ["a"]}]
    raw["derived_parameters"] = ["MELD", "NOPE"]
    text = _trial_file_error(tmp_path, raw)
    assert "baseline_covariates (X): source 'lab.x' must be one of adsl, screening.<column>" in text
    assert "baseline_covariates (Y): source 'class.MELD': MELD has no classes" in text
    assert "baseline_covariates (Z): levels are for a categorical covariate" in text
    assert "derived parameter NOPE: not in the registry (helpers.scores: CPSCORE, EGFR, MELD, MELDNA)" in text


def test_clinical_assessments_come_from_the_trial_file_and_match_the_scores_that_read_them(tmp_path, trial):
    """The clinical file's grade columns are the trial file's (levels, "present, grade unknown" only where
    accepted, flags Y/N); a derived parameter's grade must be declared with the levels it scores."""
    import yaml

    from helpers.data.schema import export_spec
    from helpers.trial import load_trial
    cols = {c.name: c for c in export_spec(trial)["clinical"].columns}
    assert list(cols) == ["subject_id", "visit", "assessment_date", "ascites", "encephalopathy", "dialysis"]
    assert cols["ascites"].allowed == ("none", "mild", "moderate-severe", "present, grade unknown")
    assert cols["dialysis"].type == "flag" and cols["dialysis"].allowed_values(trial) == ("Y", "N")
    raw = yaml.safe_load(open(trial.source, encoding="utf-8"))
    raw["clinical_assessments"] = [{"column": "ascites", "label": "Ascites", "levels": ["none", "present"]},
                                   {"column": "dialysis", "label": "Dialysis"}]
    text = _trial_file_error(tmp_path, raw)
    path = tmp_path / "trial.yaml"
    assert "clinical_assessments (ascites): levels ['none', 'present'] are not those CPSCORE scores" in text
    assert "derived parameter CPSCORE: needs the clinical assessment 'encephalopathy'" in text
    assert "baseline_covariates (HEPENC): source 'clinical.encephalopathy': no clinical_assessments column" in text
    raw["clinical_assessments"][0] = {"column": "ascites", "label": "Ascites", "levels": ["none", "mild", "moderate-severe"]}
    raw["clinical_assessments"].append({"column": "encephalopathy", "levels": ["none", "grade 1-2", "grade 3-4"]})
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    strict = load_trial(path)
    assert {c.name: c.allowed for c in export_spec(strict)["clinical"].columns}["ascites"] == (
        "none", "mild", "moderate-severe")
