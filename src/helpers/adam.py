"""ADaM-style analysis datasets (ADSL, ADLB, ADTTE) derived from a validated export.

One small ``derive_*`` function per rule, in the manner of pharmaverse admiral; the ``build_*``
functions chain them. Column names follow CDISC ADaM.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import scores
from .loading import Export
from .trial import Trial

LAB_PARAMS = {  # export column -> (PARAMCD, label, unit) for labs that are not trial endpoints
    "creat": ("CREAT", "Creatinine", "umol/L"),
    "sodium": ("SODIUM", "Sodium", "mmol/L"),
}
DERIVED_PARAMS = {
    "MELD": ("MELD score", "points"),
    "MELDNA": ("MELD-Na score", "points"),
    "CPSCORE": ("Child-Pugh score", "points"),
}


def usubjid(trial: Trial, subject_id: pd.Series) -> pd.Series:
    """Unique subject identifier: study id and site-subject number."""
    return trial.id + "-" + subject_id.astype(str)


def study_day(date: pd.Series, ref: pd.Series) -> pd.Series:
    """CDISC study day: the reference date is day 1, the day before it day -1 (no day 0)."""
    delta = (date - ref).dt.days
    return (delta + (delta >= 0)).astype("Int64")


def derive_last_alive(export: Export) -> pd.Series:
    """Last date each participant was known alive: the latest of every dated record."""
    frames = [export["randomization"][["subject_id", "rand_date"]].set_axis(["subject_id", "date"], axis=1),
              export["infusion"][["subject_id", "infusion_date"]].set_axis(["subject_id", "date"], axis=1),
              export["labs"][["subject_id", "lab_date"]].set_axis(["subject_id", "date"], axis=1),
              export["clinical"][["subject_id", "assessment_date"]].set_axis(["subject_id", "date"], axis=1)]
    ev = export["events"]
    alive = ev[ev["event_type"] != "DEATH"]
    for col in ("start_date", "end_date"):
        frames.append(alive[["subject_id", col]].set_axis(["subject_id", "date"], axis=1))
    dates = pd.concat(frames).dropna()
    return dates.groupby("subject_id")["date"].max()


def lookup(keys: pd.Series, table: pd.Series) -> pd.Series:
    """Values of ``table`` (uniquely indexed) at ``keys``, missing where absent, keeping its dtype even when empty."""
    return pd.Series(table.reindex(keys.to_numpy()).to_numpy(), index=keys.index, name=table.name)


def _first_event(events: pd.DataFrame, kind: str) -> pd.DataFrame:
    ev = events[events["event_type"] == kind].sort_values(["subject_id", "start_date"])
    return ev.drop_duplicates("subject_id").set_index("subject_id")


def derive_disposition(adsl: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Death, transplant and end-of-study status (EOSSTT, DCSREAS) from the events file."""
    death, tx = _first_event(events, "DEATH"), _first_event(events, "TRANSPLANT")
    wd, done = _first_event(events, "WITHDRAWAL"), _first_event(events, "COMPLETED")
    sid = adsl["SUBJID"]
    adsl["DTHDT"] = lookup(sid, death["start_date"])
    adsl["DTHFL"] = np.where(adsl["DTHDT"].notna(), "Y", "N")
    adsl["DTHCAUS"] = lookup(sid, death["term"])
    adsl["LTXDT"] = lookup(sid, tx["start_date"])
    adsl["LTXFL"] = np.where(adsl["LTXDT"].notna(), "Y", "N")
    reason = pd.Series(pd.NA, index=adsl.index, dtype="object")
    reason = reason.mask(sid.isin(wd.index), lookup(sid, wd["term"]).astype("string").str.upper())
    reason = reason.mask(sid.isin(tx.index), "LIVER TRANSPLANT")
    reason = reason.mask(sid.isin(death.index), "DEATH")
    adsl["EOSSTT"] = np.select([sid.isin(done.index) & reason.isna(), reason.notna()],
                               ["COMPLETED", "DISCONTINUED"], "ONGOING")
    adsl["DCSREAS"] = reason
    adsl["EOSDT"] = lookup(sid, done["start_date"]).fillna(adsl["DTHDT"]).fillna(adsl["LTXDT"]).fillna(lookup(sid, wd["start_date"]))
    return adsl


def derive_baseline_covariates(adsl: pd.DataFrame, adlb: pd.DataFrame, clinical: pd.DataFrame,
                               trial: Trial) -> pd.DataFrame:
    """Baseline labs and scores (one column per PARAMCD, suffix BL) and clinical grades."""
    base = adlb[adlb["ABLFL"] == "Y"].pivot(index="USUBJID", columns="PARAMCD", values="AVAL")
    for paramcd in base.columns:
        adsl[f"{paramcd}BL"] = adsl["USUBJID"].map(base[paramcd])
    adsl["MELD"] = adsl.pop("MELDBL").astype("Int64") if "MELDBL" in adsl else pd.NA
    adsl["CPSCORE"] = adsl.pop("CPSCOREBL").astype("Int64") if "CPSCOREBL" in adsl else pd.NA
    adsl["CPCLASS"] = scores.child_pugh_class(adsl["CPSCORE"].astype("Float64"))
    cl = clinical[clinical["visit"] == trial.baseline_visit.code].set_index("subject_id")
    adsl["ASCITES"] = adsl["SUBJID"].map(cl["ascites"])
    adsl["HEPENC"] = adsl["SUBJID"].map(cl["encephalopathy"])
    return adsl


def build_adsl(export: Export, trial: Trial) -> pd.DataFrame:
    """Subject-level analysis dataset: one row per randomized participant."""
    rand = export["randomization"].sort_values("subject_id")
    scr = export["screening"].set_index("screening_id")
    inf = export["infusion"].sort_values(["subject_id", "infusion_no"]).drop_duplicates("subject_id")
    inf = inf.set_index("subject_id")
    order = {a.code: i + 1 for i, a in enumerate(trial.arms)}
    adsl = pd.DataFrame({
        "STUDYID": trial.id,
        "USUBJID": usubjid(trial, rand["subject_id"]).values,
        "SUBJID": rand["subject_id"].values,
        "SITEID": rand["subject_id"].str.split("-").str[0].values,
        "AGE": rand["screening_id"].map(scr["age"]).values,
        "AGEU": "YEARS",
        "SEX": rand["screening_id"].map(scr["sex"]).values,
        "ETIOLOGY": rand["screening_id"].map(scr["etiology"]).values,
        "ARMCD": rand["arm"].values,
        "TRT01P": rand["arm"].map(trial.arm_labels).values,
        "TRT01PN": rand["arm"].map(order).astype("Int64").values,
        "RANDDT": rand["rand_date"].values,
        "RANDBLK": rand["block"].values,
    })
    adsl["TRT01A"] = adsl["SUBJID"].map(inf["arm_received"]).map(trial.arm_labels)
    adsl["TRT01AN"] = adsl["SUBJID"].map(inf["arm_received"]).map(order).astype("Int64")
    adsl["TRTSDT"] = adsl["SUBJID"].map(inf["infusion_date"])
    adsl["ITTFL"] = "Y"
    adsl["SAFFL"] = np.where(adsl["TRTSDT"].notna(), "Y", "N")
    adsl = derive_disposition(adsl, export["events"])
    adsl["LSTALVDT"] = adsl["SUBJID"].map(derive_last_alive(export))
    adsl["LSTALVDT"] = adsl["LSTALVDT"].where(adsl["DTHDT"].isna(), adsl["DTHDT"])
    return adsl


def derive_scores_by_visit(labs: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """MELD, MELD-Na and Child-Pugh score per participant and visit (labs with that visit's clinical grades)."""
    m = labs.merge(clinical[["subject_id", "visit", "ascites", "encephalopathy", "dialysis"]],
                   on=["subject_id", "visit"], how="left")
    dialysis = (m["dialysis"] == "Y").to_numpy()
    m["MELD"] = scores.meld(m["tbil"], m["inr"], m["creat"], dialysis=dialysis)
    m["MELDNA"] = scores.meld_na(m["tbil"], m["inr"], m["creat"], m["sodium"], dialysis=dialysis)
    has_grades = m["ascites"].notna() & m["encephalopathy"].notna()
    cp = pd.Series(np.nan, index=m.index)
    if has_grades.any():
        g = m[has_grades]
        cp[has_grades] = scores.child_pugh_points(g["tbil"], g["alb"], g["inr"], g["ascites"], g["encephalopathy"])
    m["CPSCORE"] = cp
    return m


def derive_base_chg(adlb: pd.DataFrame) -> pd.DataFrame:
    """BASE from the baseline record (ABLFL = Y); CHG = AVAL - BASE and PCHG = 100 CHG / BASE after baseline."""
    base = adlb[adlb["ABLFL"] == "Y"].set_index(["USUBJID", "PARAMCD"])["AVAL"]
    key = pd.MultiIndex.from_frame(adlb[["USUBJID", "PARAMCD"]])
    adlb["BASE"] = base.reindex(key).to_numpy()
    post = adlb["AVISITN"] > 0
    adlb["CHG"] = (adlb["AVAL"] - adlb["BASE"]).where(post)
    adlb["PCHG"] = (100 * adlb["CHG"] / adlb["BASE"]).where(post & (adlb["BASE"] != 0))
    return adlb


def build_adlb(export: Export, trial: Trial, adsl: pd.DataFrame) -> pd.DataFrame:
    """Laboratory analysis dataset, long: one row per participant, parameter and visit with a value.

    Parameters are the trial's laboratory endpoints, creatinine and sodium, and the derived MELD,
    MELD-Na and Child-Pugh score. Baseline is the record of the trial's baseline visit.
    """
    wide = derive_scores_by_visit(export["labs"], export["clinical"])
    params = {e.code.lower(): (e.code, e.label, e.unit) for e in trial.lab_endpoints}
    params.update(LAB_PARAMS)
    params.update({code: (code, label, unit) for code, (label, unit) in DERIVED_PARAMS.items()})
    long = wide.melt(id_vars=["subject_id", "visit", "lab_date"], value_vars=list(params),
                     var_name="col", value_name="AVAL").dropna(subset=["AVAL"])
    visits = {v.code: v for v in trial.visits}
    sl = adsl.set_index("SUBJID")
    adlb = pd.DataFrame({
        "STUDYID": trial.id,
        "USUBJID": long["subject_id"].map(sl["USUBJID"]),
        "TRT01P": long["subject_id"].map(sl["TRT01P"]),
        "TRT01PN": long["subject_id"].map(sl["TRT01PN"]),
        "PARAMCD": long["col"].map(lambda c: params[c][0]),
        "PARAM": long["col"].map(lambda c: _param_label(*params[c][1:])),
        "AVISIT": long["visit"].map(lambda v: visits[v].label),
        "AVISITN": long["visit"].map(lambda v: visits[v].week).astype("Int64"),
        "ADT": long["lab_date"],
        "ADY": study_day(long["lab_date"], long["subject_id"].map(sl["TRTSDT"].fillna(sl["RANDDT"]))),
        "AVAL": long["AVAL"].astype(float),
        "AVALU": long["col"].map(lambda c: params[c][2]),
    })
    adlb["ABLFL"] = np.where(adlb["AVISITN"] == trial.baseline_visit.week, "Y", "")
    adlb = derive_base_chg(adlb)
    param_order = {p[0]: i for i, p in enumerate(params.values())}
    adlb = adlb.assign(_p=adlb["PARAMCD"].map(param_order)).sort_values(["USUBJID", "_p", "AVISITN"])
    return adlb.drop(columns="_p").reset_index(drop=True)


def _param_label(label: str, unit: str) -> str:
    return label if unit in ("", "1") else f"{label} ({unit})"


def build_adtte(adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Time-to-event dataset from randomization (days, AVAL = ADT - STARTDT + 1), administratively censored at the horizon.

    OS: event death; censored at liver transplant when the trial file says so, otherwise at last
    known alive. TFS (transplant-free survival): event death or transplant.
    """
    horizon = int(trial.primary_endpoint.get("horizon_days", 7 * trial.followup_weeks))
    censor_at_tx = trial.primary_endpoint.get("transplant", "censor") == "censor"
    start = adsl["RANDDT"]
    rows = []
    os_event = adsl["DTHDT"].notna() & ~(censor_at_tx & (adsl["LTXDT"] < adsl["DTHDT"]))
    os_cens_date = adsl["LTXDT"].where(censor_at_tx & adsl["LTXDT"].notna(), adsl["LSTALVDT"])
    rows.append(_tte("OS", trial.primary_endpoint.get("label", "Overall survival"), adsl, start,
                     os_event, adsl["DTHDT"].where(os_event, os_cens_date), horizon,
                     np.where(os_event, "DEATH", np.where(censor_at_tx & adsl["LTXDT"].notna(),
                                                          "LIVER TRANSPLANT", "LAST KNOWN ALIVE"))))
    tfs_date = pd.concat([adsl["DTHDT"], adsl["LTXDT"]], axis=1).min(axis=1)
    tfs_event = tfs_date.notna()
    rows.append(_tte("TFS", "Transplant-free survival", adsl, start, tfs_event,
                     tfs_date.where(tfs_event, adsl["LSTALVDT"]), horizon,
                     np.where(adsl["LTXDT"].notna() & (adsl["LTXDT"] == tfs_date), "LIVER TRANSPLANT",
                              np.where(tfs_event, "DEATH", "LAST KNOWN ALIVE"))))
    return pd.concat(rows, ignore_index=True)


def _tte(paramcd, param, adsl, start, event, date, horizon, desc) -> pd.DataFrame:
    aval = (date - start).dt.days + 1
    beyond = aval > horizon
    return pd.DataFrame({
        "STUDYID": adsl["STUDYID"], "USUBJID": adsl["USUBJID"], "TRT01P": adsl["TRT01P"],
        "TRT01PN": adsl["TRT01PN"], "PARAMCD": paramcd, "PARAM": f"{param} (days)", "STARTDT": start,
        "ADT": date.where(~beyond, start + pd.Timedelta(days=horizon - 1)),
        "AVAL": aval.clip(upper=horizon).astype("Int64"),
        "CNSR": np.where(event & ~beyond, 0, 1),
        "EVNTDESC": np.where(beyond, "ALIVE AT HORIZON", desc),
    })


def build_adam(export: Export, trial: Trial) -> dict[str, pd.DataFrame]:
    """ADSL, ADLB and ADTTE from a validated export."""
    adsl = build_adsl(export, trial)
    adlb = build_adlb(export, trial, adsl)
    adsl = derive_baseline_covariates(adsl, adlb, export["clinical"], trial)
    return {"adsl": adsl, "adlb": adlb, "adtte": build_adtte(adsl, trial)}


def write_adam(adam: dict[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write each dataset as CSV (ISO dates, fixed float format) so an independent programmer can re-derive every number."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in adam.items():
        path = out_dir / f"{name}.csv"
        df.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.10g", lineterminator="\n")
        written.append(path)
    return written
