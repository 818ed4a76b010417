"""Cohort descriptions on hand-made ADSL/ADLB frames: visits not yet due at an interim look, missing
values and their reasons, records kept but not analysed, disposition at a cut-off, the export summary."""
import numpy as np
import pandas as pd
import pytest

from helpers.analysis import cohort
from helpers.data.loading import Export
from helpers.report import cohort as cohort_report
from helpers.trial import load_trial

TRIAL = load_trial("DEMO-ORAL")  # visits: baseline, week 4 (window to day 36), week 12 (to 99), week 24 (to 183)
T0 = pd.Timestamp("2026-01-01")


def _adsl(cutoff=None) -> pd.DataFrame:
    """P1, P2 on placebo and ongoing; P3 on the drug, died on day 20."""
    return pd.DataFrame({
        "USUBJID": ["P1", "P2", "P3"], "SUBJID": ["01", "02", "03"], "ARMCD": ["PBO", "PBO", "DRUG"],
        "TRT01P": ["Placebo", "Placebo", "Oral drug"], "RANDDT": T0, "TRTSDT": T0,
        "DCUTDT": pd.Timestamp(cutoff) if cutoff else pd.NaT,
        "EOSSTT": ["ONGOING", "ONGOING", "DISCONTINUED"], "DCSREAS": [pd.NA, pd.NA, "DEATH"],
        "EOSDT": [pd.NaT, pd.NaT, T0 + pd.Timedelta(days=19)]})


def _lb(rows) -> pd.DataFrame:
    """ADLB rows from (USUBJID, PARAMCD, VISIT, AVISIT, AVAL, ANL01FL, LBREASND)."""
    weeks = {v.label: v.week for v in TRIAL.visits}
    params = {"TBIL": "Total bilirubin (umol/L)", "ALB": "Albumin (g/L)"}
    d = pd.DataFrame(rows, columns=["USUBJID", "PARAMCD", "VISIT", "AVISIT", "AVAL", "ANL01FL", "LBREASND"])
    d["PARAM"] = d["PARAMCD"].map(params)
    d["AVISITN"] = d["AVISIT"].map(weeks).astype("Int64")
    d["AVAL"] = d["AVAL"].astype(float)
    d["LBSTAT"] = np.where(d["AVAL"].isna(), "NOT DONE", "")
    return d


def _attendance() -> pd.DataFrame:
    """Everyone at baseline; P1 at week 4; P2's week-4 sample not done (so not analysed)."""
    return _lb([("P1", "TBIL", "BASELINE", "Baseline", 10, "Y", None),
                ("P2", "TBIL", "BASELINE", "Baseline", 11, "Y", None),
                ("P3", "TBIL", "BASELINE", "Baseline", 12, "Y", None),
                ("P1", "TBIL", "WEEK4", "Week 4", 9, "Y", None),
                ("P2", "TBIL", "WEEK4", "Week 4", None, "", "not done")])


def _by(table, arm, visit):
    return table[(table["Arm"] == arm) & (table["Visit"] == visit)].iloc[0]


def test_visits_not_yet_due_at_an_interim_look():
    comp = cohort.visit_completeness(_adsl("2026-03-01"), _attendance(), TRIAL)  # cut-off on day 60
    w4, w12 = _by(comp, "Placebo", "Week 4"), _by(comp, "Placebo", "Week 12")
    assert (w4["Expected"], w4["Attended"], w4["Missed"], w4["Not yet due"]) == (2, 1, 1, 0)
    assert (w12["Expected"], w12["Attended"], w12["Missed"], w12["Not yet due"]) == (0, 0, 0, 2)
    assert np.isnan(w12["% attended"])
    drug = _by(comp, "Oral drug", "Week 12")  # died before the visit: ended, not "not yet due"
    assert (drug["Ended before visit"], drug["Not yet due"], drug["Expected"]) == (1, 0, 0)
    assert (comp["Randomized"] == comp["Ended before visit"] + comp["Not yet due"] + comp["Expected"]).all()


def test_window_closing_exactly_at_the_cutoff_is_due():
    # week 4 closes on day 36 = 2026-02-05: due on that day, not yet due the day before
    on_day = _by(cohort.visit_completeness(_adsl("2026-02-05"), _attendance(), TRIAL), "Placebo", "Week 4")
    before = _by(cohort.visit_completeness(_adsl("2026-02-04"), _attendance(), TRIAL), "Placebo", "Week 4")
    assert (on_day["Not yet due"], on_day["Missed"]) == (0, 1)
    assert (before["Not yet due"], before["Missed"], before["Attended"]) == (1, 0, 1)


def test_final_analysis_has_no_visit_not_yet_due():
    comp = cohort.visit_completeness(_adsl(), _attendance(), TRIAL)
    w12 = _by(comp, "Placebo", "Week 12")
    assert (comp["Not yet due"] == 0).all() and (w12["Expected"], w12["Missed"]) == (2, 2)
    table = cohort_report.completeness_table(comp, {"Placebo": "Placebo (N=2)", "Oral drug": "Oral drug (N=1)"})
    assert not any("not yet due" in c for c in table.columns)
    interim = cohort_report.completeness_table(cohort.visit_completeness(_adsl("2026-03-01"), _attendance(), TRIAL),
                                        {"Placebo": "Placebo (N=2)", "Oral drug": "Oral drug (N=1)"})
    assert interim.set_index("Visit").at["Week 12", "Placebo (N=2): not yet due"] == 2
    assert interim.set_index("Visit").at["Week 12", "Placebo (N=2): attended / expected"] == "0 / 0"


def test_a_visit_after_the_study_ended_for_a_completer_is_not_missed():
    """Administrative end of follow-up: P2 completed the study on day 50 (the study closed), so week 12 and week 24
    are not due for P2 in a final analysis; P1, ongoing, still misses them."""
    adsl = _adsl()
    adsl.loc[1, ["EOSSTT", "EOSDT"]] = ["COMPLETED", T0 + pd.Timedelta(days=49)]
    comp = cohort.visit_completeness(adsl, _attendance(), TRIAL)
    w4, w12 = _by(comp, "Placebo", "Week 4"), _by(comp, "Placebo", "Week 12")
    assert (w4["Expected"], w4["Missed"], w4["Not yet due"]) == (2, 1, 0), "week 4's window opened before day 50"
    assert (w12["Expected"], w12["Missed"], w12["Not yet due"]) == (1, 1, 1)
    assert (comp["Randomized"] == comp["Ended before visit"] + comp["Not yet due"] + comp["Expected"]).all()


def test_attendance_needs_an_analysed_record():
    lb = _attendance()
    lb.loc[lb["USUBJID"].eq("P2") & lb["AVISIT"].eq("Week 4"), "ANL01FL"] = "Y"
    status = cohort.visit_status(_adsl(), lb, TRIAL)
    assert status.loc[status["USUBJID"].eq("P2") & status["Visit"].eq("Week 4"), "attended"].item()
    no_flag = cohort.visit_status(_adsl(), _attendance().drop(columns="ANL01FL"), TRIAL)
    assert no_flag.loc[no_flag["USUBJID"].eq("P2") & no_flag["Visit"].eq("Week 4"), "attended"].item()
    flagged = cohort.visit_status(_adsl(), _attendance(), TRIAL)
    assert not flagged.loc[flagged["USUBJID"].eq("P2") & flagged["Visit"].eq("Week 4"), "attended"].item()


def test_missingness_by_visit_counts_reasons():
    lb = _lb([("P1", "ALB", "BASELINE", "Baseline", 35, "Y", None),
              ("P1", "TBIL", "BASELINE", "Baseline", 10, "Y", None),
              ("P2", "TBIL", "BASELINE", "Baseline", None, "", "not done"),
              ("P3", "TBIL", "BASELINE", "Baseline", None, "", None),
              ("P4", "TBIL", "BASELINE", "Baseline", None, "", "not done"),
              ("P5", "TBIL", "BASELINE", "Baseline", None, "", "sample haemolysed"),
              ("P1", "TBIL", "WEEK4", "Week 4", 9, "Y", None),
              ("P2", "TBIL", "WEEK4", "Week 4", None, "", "sample haemolysed"),
              ("P2", "TBIL", "UNSCHEDULED", "Week 4", 12, "Y", None),
              ("P1", "TBIL", "UNSCHEDULED", "Unscheduled", None, "", "not done")])
    miss = cohort.missingness_by_visit(lb, TRIAL)
    assert miss[["Parameter", "Visit"]].values.tolist() == [["Total bilirubin (umol/L)", "Baseline"],
                                                            ["Total bilirubin (umol/L)", "Week 4"],
                                                            ["Albumin (g/L)", "Baseline"]]
    assert miss["Records"].tolist() == [5, 3, 1] and miss["Missing"].tolist() == [4, 1, 0]
    assert miss["Reasons"].tolist() == ["not done 2; sample haemolysed 1; no reason given 1", "sample haemolysed 1", ""]


def test_unscheduled_and_repeated_samples_counted_once_per_sample():
    lb = _lb([("P1", "TBIL", "WEEK4", "Week 4", 9, "Y", None),
              ("P1", "ALB", "WEEK4", "Week 4", 30, "Y", None),
              ("P1", "TBIL", "WEEK4", "Week 4", 8, "", None),
              ("P1", "ALB", "WEEK4", "Week 4", 31, "", None),
              ("P1", "TBIL", "UNSCHEDULED", "Week 4", 7, "", None),
              ("P2", "ALB", "UNSCHEDULED", "Unscheduled", 30, "", None),
              ("P2", "ALB", "WEEK12", "Week 12", None, "", "not done")])
    lb["ADT"] = pd.to_datetime(["2025-02-01", "2025-02-01", "2025-02-03", "2025-02-03", "2025-02-05", "2025-03-01",
                                "2025-04-01"])
    table = cohort.unscheduled_records(lb, TRIAL)
    assert table.values.tolist() == [["Week 4", 1, 1, 1], ["Unscheduled", 1, 0, 1]]
    assert cohort.unscheduled_records(lb[lb["ANL01FL"] == "Y"], TRIAL).empty


@pytest.mark.parametrize("cutoff,label", [("2026-03-01", "Ongoing at data cut-off"), (None, "Ongoing")])
def test_disposition_at_a_cutoff(cutoff, label):
    adsl = _adsl(cutoff)
    table = cohort_report.disposition(cohort.disposition_counts(adsl, TRIAL), adsl, TRIAL).set_index("Status")
    assert table.index.tolist() == ["Discontinued: death", label]
    assert table.at[label, "Placebo (N=2)"] == "2 (100.0%)" and table.at[label, "Total (N=3)"] == "2 (66.7%)"


def test_export_summary_copes_with_empty_and_id_less_tables():
    tables = {"screening": pd.DataFrame({"screening_id": ["S1", "S2", "S2"]}),
              "dosing": pd.DataFrame({"subject_id": pd.Series(dtype="string")}),
              "sites": pd.DataFrame({"site": ["01"]}), "nothing": pd.DataFrame()}
    summary = cohort.export_summary(Export(folder=None, tables=tables))
    assert summary["Rows"].tolist() == [3, 0, 1, 0]
    assert summary["Persons"].tolist()[:2] == [2, 0] and summary["Persons"].isna().tolist() == [False, False, True, True]


def test_arm_header_and_cumulative_accrual_table():
    adsl = _adsl()
    header = cohort_report.arm_header(adsl, TRIAL)
    assert header == {"Placebo": "Placebo (N=2)", "Oral drug": "Oral drug (N=1)"}
    table = cohort_report.cumulative_accrual_table(cohort.accrual_by_month(adsl, TRIAL), header)
    assert table.values.tolist() == [["2026-01", 2, 1]] and list(table.columns) == ["Month", *header.values()]


def test_chapter_numbers_and_missing_values():
    lb = _attendance()
    tables = {"screening": pd.DataFrame({"screening_id": ["S1", "S2", "S3", "S4"]})}
    missingness = cohort.missingness_table(lb, TRIAL)
    assert missingness.iloc[-1].tolist() == ["All", "All", 5, 1, ""]
    numbers = cohort_report.chapter_numbers(Export(folder=None, tables=tables), _adsl(), missingness, TRIAL,
                                            "a source")
    assert numbers == {"source": "a source", "n_screened": 4, "n_randomized": 3,
                       "n_per_arm": "2 to Placebo, 1 to Oral drug", "n_warnings": 0, "n_missing": 1, "n_values": 5,
                       "early_ends": "death, liver transplant or withdrawal"}
    missing = cohort_report.missing_values(missingness)
    assert missing[["Visit", "Missing"]].values.tolist() == [["Week 4", 1]]
