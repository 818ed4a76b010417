"""Counts describing the cohort as a whole: files of the export, participants per arm, accrual over time,
visit completeness, missing values and samples not analysed (display tables: ``helpers.report.cohort``)."""
from __future__ import annotations

import pandas as pd

from helpers.data.adam import UNSCHEDULED_LABEL
from helpers.data.loading import Export
from helpers.data.schema import UNSCHEDULED
from helpers.trial import Trial


def arm_n(adsl: pd.DataFrame, trial: Trial) -> dict[str, int]:
    """Participants randomized per arm (TRT01P label), in the trial file's arm order."""
    counts = adsl["TRT01P"].value_counts()
    return {a.label: int(counts.get(a.label, 0)) for a in trial.arms}


def export_summary(export: Export) -> pd.DataFrame:
    """Rows and participants per file of the export, and validation warnings per file.

    Persons counts distinct ``subject_id`` (else ``screening_id``); it is missing for a table with
    neither, and 0 for an empty table (an optional file the trial does not have).
    """
    warn = pd.Series([w.file.rsplit(".", 1)[0] for w in export.warnings], dtype="object").value_counts()
    rows = []
    for name, table in export.tables.items():
        id_col = next((c for c in ("subject_id", "screening_id") if c in table), None)
        rows.append({"File": name, "Rows": len(table), "Persons": table[id_col].nunique() if id_col else pd.NA,
                     "Warnings": int(warn.get(name, 0))})
    return pd.DataFrame(rows, columns=["File", "Rows", "Persons", "Warnings"]).astype({"Persons": "Int64"})


def accrual_by_month(adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Participants randomized per calendar month and arm, with cumulative totals (long format)."""
    month = adsl["RANDDT"].dt.to_period("M")
    months = pd.period_range(month.min(), month.max(), freq="M")
    counts = (pd.crosstab(month, adsl["TRT01P"]).reindex(index=months, columns=[a.label for a in trial.arms])
              .fillna(0).astype(int))
    counts.index.name = "Month"
    out = counts.stack().rename("Randomized").reset_index().rename(columns={"TRT01P": "Arm"})
    out["Cumulative"] = out.groupby("Arm")["Randomized"].cumsum()
    out["Month"] = out["Month"].astype(str)
    return out


def _attended(adlb: pd.DataFrame) -> set:
    """(USUBJID, AVISITN) pairs with an analysed laboratory record (ANL01FL = Y when ADLB has the flag)."""
    rec = adlb[adlb["ANL01FL"] == "Y"] if "ANL01FL" in adlb else adlb
    return set(zip(rec["USUBJID"], rec["AVISITN"]))


def visit_status(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """One row per participant and visit: attended, follow-up ended before it (and why), not yet due, or expected.

    Attendance is an analysed laboratory record at the visit. Follow-up ended before a visit when
    death, an intercurrent event of the trial file or withdrawal came before its target day. At an interim look (ADSL DCUTDT
    set), a visit not attended whose window had not closed by the cut-off (its last day after DCUTDT) is not yet
    due: neither expected nor missed; so is a visit whose window opened only after the participant completed the
    study (administrative end of follow-up). Every other visit is expected. Days count from study day 1
    (``Trial.day_one``); windows are the visits' (``Visit.opens_on``, ``Visit.closes_on``).
    """
    seen = _attended(adlb)
    ref = trial.day_one(adsl["TRTSDT"], adsl["RANDDT"])
    cutoff = adsl["DCUTDT"] if "DCUTDT" in adsl else pd.Series(pd.NaT, index=adsl.index)
    rows = []
    for v in trial.visits:
        attended = pd.Series([(u, v.week) in seen for u in adsl["USUBJID"]], index=adsl.index, dtype=bool)
        ended = (adsl["EOSSTT"].eq("DISCONTINUED") & (adsl["EOSDT"] < v.target_on(ref))
                 & ~attended).fillna(False).astype(bool)
        closes = v.closes_on(ref)
        study_over = (adsl["EOSSTT"].eq("COMPLETED") & (adsl["EOSDT"] < v.opens_on(ref))).fillna(False).astype(bool)
        not_yet = (((closes > cutoff).fillna(False).astype(bool) & cutoff.notna()) | study_over) & ~attended & ~ended
        rows.append(pd.DataFrame({"USUBJID": adsl["USUBJID"], "ARMCD": adsl["ARMCD"], "Visit": v.label,
                                  "attended": attended, "ended": ended, "not_yet_due": not_yet,
                                  "expected": ~ended & ~not_yet, "reason": adsl["DCSREAS"].where(ended)}))
    return pd.concat(rows, ignore_index=True)


def visit_completeness(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """By arm and visit: randomized, ended follow-up before the visit, not yet due (interim look),
    expected, attended, missed, % attended (of those expected)."""
    status = visit_status(adsl, adlb, trial)
    rows = []
    for arm in trial.arms:
        for v in trial.visits:
            d = status[(status["ARMCD"] == arm.code) & (status["Visit"] == v.label)]
            expected, attended = int(d["expected"].sum()), int(d["attended"].sum())
            rows.append({"Arm": arm.label, "Visit": v.label, "Randomized": len(d),
                         "Ended before visit": int(d["ended"].sum()), "Not yet due": int(d["not_yet_due"].sum()),
                         "Expected": expected, "Attended": attended, "Missed": expected - attended,
                         "% attended": round(100 * attended / expected, 1) if expected else float("nan")})
    return pd.DataFrame(rows)


def _param_order(adlb: pd.DataFrame, trial: Trial) -> list[str]:
    known = trial.lab_codes + trial.derived_scores
    present = set(adlb["PARAMCD"])
    return [p for p in known if p in present] + [p for p in dict.fromkeys(adlb["PARAMCD"]) if p not in known]


def _reasons(reason: pd.Series) -> str:
    """'not done 2; sample haemolysed 1; no reason given 1': reasons by count (ties alphabetical), unexplained last."""
    none = "no reason given"
    counts = reason.astype("object").fillna(none).astype(str).value_counts()
    return "; ".join(f"{r} {n}" for r, n in sorted(counts.items(), key=lambda x: (x[0] == none, -x[1], x[0])))


COMPLETED_FIRST = "Completed"


def disposition_counts(adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """End-of-study status and reason (ADSL EOSSTT, DCSREAS) by arm and in total: STATUS, ARM ("Total" for all),
    n, N (randomized in the arm), pct. At an interim look (DCUTDT set) a participant still in follow-up is
    "Ongoing at data cut-off"."""
    status = adsl["EOSSTT"].str.capitalize().where(adsl["DCSREAS"].isna(),
                                                   "Discontinued: " + adsl["DCSREAS"].fillna("").str.lower())
    if "DCUTDT" in adsl:
        status = status.mask(adsl["EOSSTT"].eq("ONGOING") & adsl["DCUTDT"].notna(), "Ongoing at data cut-off")
    order = sorted(status.unique(), key=lambda s: (not s.startswith(COMPLETED_FIRST), s))
    groups = [(arm.label, adsl["ARMCD"] == arm.code) for arm in trial.arms] + [("Total", adsl["ARMCD"].notna())]
    rows = [{"STATUS": s, "ARM": label, "n": int((status[mask] == s).sum()), "N": int(mask.sum())}
            for s in order for label, mask in groups]
    out = pd.DataFrame(rows, columns=["STATUS", "ARM", "n", "N"])
    return out.assign(pct=100 * out["n"] / out["N"].where(out["N"] > 0))


def missingness_by_visit(adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Per parameter (trial order) and scheduled analysis visit: records, missing values and their reasons.

    Counted from the full ADLB, every record kept (not only the analysed ones), so that a sample
    not done is seen next to a repeat that replaced it. A missing value is a record with LBSTAT
    NOT DONE; its reason is LBREASND. Records outside every visit window ("Unscheduled") are left out.
    """
    d = adlb[adlb["AVISIT"] != UNSCHEDULED_LABEL]
    labels = d.drop_duplicates("PARAMCD").set_index("PARAMCD")["PARAM"]
    rows = []
    cells = dict(list(d.groupby(["PARAMCD", "AVISIT"], sort=False)))
    for p in _param_order(d, trial):
        for v in trial.visits:
            rec = cells.get((p, v.label))
            if rec is None or rec.empty:
                continue
            miss = rec[rec["LBSTAT"] == "NOT DONE"]
            rows.append({"Parameter": labels[p], "Visit": v.label, "Records": len(rec), "Missing": len(miss),
                         "Reasons": _reasons(miss["LBREASND"])})
    return pd.DataFrame(rows, columns=["Parameter", "Visit", "Records", "Missing", "Reasons"])


ALL = "All"


def missingness_table(adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """``missingness_by_visit`` with a last row of the totals (Parameter and Visit "All", no reasons)."""
    m = missingness_by_visit(adlb, trial)
    total = pd.DataFrame([{"Parameter": ALL, "Visit": ALL, "Records": int(m["Records"].sum()),
                           "Missing": int(m["Missing"].sum()), "Reasons": ""}])
    return pd.concat([m, total], ignore_index=True)


def is_total(missingness: pd.DataFrame) -> pd.Series:
    """The total row of ``missingness_table``."""
    return (missingness["Parameter"] == ALL) & (missingness["Visit"] == ALL)


def unscheduled_records(adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Per analysis visit: samples kept but not analysed (no value of theirs has ANL01FL = Y).

    ``Unscheduled``: samples outside the schedule (nominal visit UNSCHEDULED); ``Repeated``: further
    samples at a scheduled visit. A sample is one participant's laboratory record on one date. Visits
    with none are left out, so an empty table means every sample is analysed.
    """
    sample = ["USUBJID", "VISIT", "AVISIT", "ADT"]
    valued = adlb[adlb["AVAL"].notna()]
    used = valued.groupby(sample, dropna=False)["ANL01FL"].apply(lambda f: f.eq("Y").any())
    kept = used[~used].reset_index()
    unscheduled = kept["VISIT"].eq(UNSCHEDULED)
    rows = []
    for visit in [v.label for v in trial.visits] + [UNSCHEDULED_LABEL]:
        at = kept["AVISIT"].eq(visit)
        if at.any():
            rows.append({"Visit": visit, "Unscheduled": int((at & unscheduled).sum()),
                         "Repeated": int((at & ~unscheduled).sum()), "Participants": kept.loc[at, "USUBJID"].nunique()})
    return pd.DataFrame(rows, columns=["Visit", "Unscheduled", "Repeated", "Participants"])
