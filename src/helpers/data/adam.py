"""ADaM-style analysis datasets (ADSL, ADLB, ADTTE) derived from a validated export.

One small ``derive_*`` function per rule, in the manner of pharmaverse admiral; the ``build_*``
functions chain them. Column names follow CDISC ADaM. Every ``derive_*`` returns a new frame (or
series) and leaves its input unchanged, so a derivation can be re-run or tested on its own.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers import scores
from helpers.data.loading import CENS, REASON, REPORTED, Export, first_doses, treatment_start
from helpers.data.schema import UNSCHEDULED
from helpers.trial import Trial, label_with_unit, study_day

UNSCHEDULED_LABEL = "Unscheduled"


def usubjid(trial: Trial, subject_id: pd.Series) -> pd.Series:
    """Unique subject identifier: study id and site-subject number."""
    return trial.id + "-" + subject_id.astype(str)


def derive_last_alive(export: Export) -> pd.Series:
    """Last date each participant was known alive (subject_id -> date).

    Rule: the latest date of any record (randomization, dose, lab, clinical assessment, and events
    other than death, start or end). Source: CDISC ADaM IG, ADSL LSTALVDT. Why: the censoring date
    of overall survival for a participant without an event.
    """
    frames = [export["randomization"][["subject_id", "rand_date"]].set_axis(["subject_id", "date"], axis=1),
              export["dosing"][["subject_id", "dose_date"]].set_axis(["subject_id", "date"], axis=1),
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


def intercurrent_columns(trial: Trial) -> dict[str, tuple[str, str]]:
    """ADSL's date and flag column of each intercurrent event the trial file declares, in its order:
    ``{code: ("ICE1DT", "ICE1FL"), ...}`` (generic names, so that they fit XPT's 8 characters for any event)."""
    return {e.code: (f"ICE{i}DT", f"ICE{i}FL") for i, e in enumerate(trial.intercurrent_events, start=1)}


def event_date_column(trial: Trial, code: str) -> str:
    """ADSL's date column of an event type that can end a time to event: DTHDT for death, ICEnDT otherwise."""
    return "DTHDT" if code == "DEATH" else intercurrent_columns(trial)[code][0]


def derive_disposition(adsl: pd.DataFrame, events: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """ADSL with death, intercurrent-event and end-of-study status: DTHDT, DTHFL, DTHCAUS, ICEnDT and ICEnFL per
    intercurrent event of the trial file (``intercurrent_columns``), EOSSTT, DCSREAS, EOSDT.

    Rule: the first DEATH, intercurrent, WITHDRAWAL and COMPLETED record of the events file. A participant
    whose follow-up ended early is DISCONTINUED with the reason that ranks first: death, then the intercurrent
    events in the trial file's order (DCSREAS their label in upper case), then the withdrawal reason; COMPLETED
    needs a completion record and no such end; anyone else is ONGOING (at an interim cut-off). EOSDT is the
    completion date, else the date of death, of an intercurrent event or of withdrawal.
    Source: CDISC ADaM IG (ADSL EOSSTT, DCSREAS, DTHFL). Why: one priority for every chapter (the CONSORT
    flow and visit completeness read these columns, they do not re-derive them).
    """
    death = _first_event(events, "DEATH")
    wd, done = _first_event(events, "WITHDRAWAL"), _first_event(events, "COMPLETED")
    sid = adsl["SUBJID"]
    out = adsl.copy()
    out["DTHDT"] = lookup(sid, death["start_date"])
    out["DTHFL"] = np.where(out["DTHDT"].notna(), "Y", "N")
    out["DTHCAUS"] = lookup(sid, death["term"])
    ice = []
    for code, (date_col, flag_col) in intercurrent_columns(trial).items():
        first = _first_event(events, code)
        out[date_col] = lookup(sid, first["start_date"])
        out[flag_col] = np.where(out[date_col].notna(), "Y", "N")
        ice.append((code, first))
    reason = pd.Series(pd.NA, index=out.index, dtype="object")
    reason = reason.mask(sid.isin(wd.index), lookup(sid, wd["term"]).astype("string").str.upper())
    for code, first in reversed(ice):
        reason = reason.mask(sid.isin(first.index), trial.event_label(code).upper())
    reason = reason.mask(sid.isin(death.index), "DEATH")
    out["EOSSTT"] = np.select([sid.isin(done.index) & reason.isna(), reason.notna()],
                              ["COMPLETED", "DISCONTINUED"], "ONGOING")
    out["DCSREAS"] = reason
    eosdt = lookup(sid, done["start_date"]).fillna(out["DTHDT"])
    for date_col, _ in intercurrent_columns(trial).values():
        eosdt = eosdt.fillna(out[date_col])
    out["EOSDT"] = eosdt.fillna(lookup(sid, wd["start_date"]))
    return out


def derive_baseline_covariates(adsl: pd.DataFrame, adlb: pd.DataFrame, clinical: pd.DataFrame,
                               trial: Trial) -> pd.DataFrame:
    """ADSL with baseline labs (``<PARAMCD>BL``), derived parameters and the trial file's baseline covariates.

    Rule: the analysed record of the baseline visit (ADLB ABLFL = Y) for each parameter; a derived parameter's
    baseline keeps its own code as name (whole numbers kept as integers), which a covariate with
    ``source: derived`` reads; one with ``class.<PARAMCD>`` is the registry's class of it; ``clinical.<column>``
    the baseline clinical assessment's grade (``screening.<column>`` covariates are set by ``build_adsl``).
    Why: Table 1 and the balance check read one subject-level row per participant.
    """
    out = adsl.copy()
    base = adlb[adlb["ABLFL"] == "Y"].pivot(index="USUBJID", columns="PARAMCD", values="AVAL")
    derived = set(trial.derived_scores)
    for paramcd in base.columns:
        value = out["USUBJID"].map(base[paramcd])
        whole = paramcd in derived and value.dropna().map(float.is_integer).all()
        out[paramcd if paramcd in derived else f"{paramcd}BL"] = value.astype("Int64") if whole else value
    cl = clinical[clinical["visit"] == trial.baseline_visit.code].drop_duplicates("subject_id").set_index("subject_id")
    missing = pd.Series(np.nan, index=out.index)
    for cov in trial.baseline_covariates:
        kind, name = cov.origin
        if kind == "derived" and name not in out:
            out[name] = missing
        elif kind == "class":
            out[cov.code] = trial.derived(name).classes.of(out.get(name, missing).astype("Float64"))
        elif kind == "clinical":
            out[cov.code] = out["SUBJID"].map(cl[name]) if name in cl else pd.NA
    return out


def build_adsl(export: Export, trial: Trial) -> pd.DataFrame:
    """Subject-level analysis dataset: one row per randomized participant (with the trial file's baseline
    covariates of ``source: screening.<column>``)."""
    rand = export["randomization"].sort_values("subject_id")
    scr = export["screening"].set_index("screening_id")
    inf = first_doses(export["dosing"])
    order = {a.code: i + 1 for i, a in enumerate(trial.arms)}
    adsl = pd.DataFrame({
        "STUDYID": trial.id,
        "USUBJID": usubjid(trial, rand["subject_id"]).values,
        "SUBJID": rand["subject_id"].values,
        "SITEID": rand["subject_id"].str.split("-").str[0].values,
        "AGE": rand["screening_id"].map(scr["age"]).values,
        "AGEU": "YEARS",
        "SEX": rand["screening_id"].map(scr["sex"]).values,
        **{c.code: rand["screening_id"].map(scr[c.origin[1]]).values
           for c in trial.baseline_covariates if c.origin[0] == "screening"},
        "ARMCD": rand["arm"].values,
        "TRT01P": rand["arm"].map(trial.arm_labels).values,
        "TRT01PN": rand["arm"].map(order).astype("Int64").values,
        "RANDDT": rand["rand_date"].values,
        "RANDBLK": rand["block"].values,
    })
    received = adsl["SUBJID"].map(inf["arm_received"]) if trial.doses_recorded(len(export["dosing"])) \
        else pd.Series(rand["arm"].astype(str).to_numpy(), index=adsl.index)
    adsl["TRT01A"] = received.map(trial.arm_labels)
    adsl["TRT01AN"] = received.map(order).astype("Int64")
    adsl["TRTSDT"] = lookup(adsl["SUBJID"], treatment_start(export.tables, trial))
    adsl["ITTFL"] = "Y"
    adsl["SAFFL"] = np.where(adsl["TRTSDT"].notna(), "Y", "N")
    adsl["DCUTDT"] = pd.Timestamp(trial.cutoff) if trial.cutoff else pd.NaT
    adsl = derive_disposition(adsl, export["events"], trial)
    adsl["LSTALVDT"] = adsl["SUBJID"].map(derive_last_alive(export))
    adsl["LSTALVDT"] = adsl["LSTALVDT"].where(adsl["DTHDT"].isna(), adsl["DTHDT"])
    return adsl


def _grade_columns(trial: Trial) -> list[str]:
    """The clinical-assessment columns the trial's derived parameters read."""
    return list(dict.fromkeys(g.column for code in trial.derived_scores for g in trial.derived(code).grades))


def _clinical_for(labs: pd.DataFrame, clinical: pd.DataFrame, grades: list[str]) -> pd.DataFrame:
    """Each lab row with the clinical grades of the same participant and visit (the assessment nearest in date)."""
    clinical = clinical.reindex(columns=list(dict.fromkeys(["subject_id", "visit", "assessment_date"] + grades)))
    m = labs.reset_index().merge(clinical, on=["subject_id", "visit"], how="left")
    m["_gap"] = (m["assessment_date"] - m["lab_date"]).abs()
    m = m.sort_values(["index", "_gap"], na_position="last").drop_duplicates("index")
    return m.set_index("index")[grades].reindex(labs.index)


def _not_derivable(frame: pd.DataFrame, parameter: scores.DerivedParameter, trial: Trial) -> pd.Series:
    """Why a derived parameter is missing: the inputs missing on that row, by label, and grades recorded unknown."""
    labels = {c.code: trial.lab(c.code).label.lower() for c in parameter.components}
    labels.update({g.column: g.label for g in parameter.required_grades})
    labels.update({v: v for v in parameter.participant})
    miss = pd.DataFrame({labels[c]: frame[c].isna() for c in labels})
    if len(miss):
        joined = np.full(len(miss), "", dtype=object)
        for k in miss.columns:
            missing = miss[k].to_numpy(bool)
            joined = np.where(missing, np.where(joined == "", k, joined + ", " + k), joined)
        text = pd.Series(joined.tolist(), index=miss.index)
    else:
        text = pd.Series(dtype=str)
    text = (text + " missing").where(text != "", "")
    for c in (g.column for g in parameter.grades):
        unknown = frame[c].eq(scores.GRADE_UNKNOWN).fillna(False).astype(bool)
        text = text.where(~unknown, text.where(text == "", text + "; ") + f"{c} {scores.GRADE_UNKNOWN}")
    return ("not derivable: " + text).where(text != "", pd.NA)


def derive_scores_by_visit(labs: pd.DataFrame, clinical: pd.DataFrame, trial: Trial,
                           participants: pd.DataFrame | None = None) -> pd.DataFrame:
    """The lab samples with the trial's derived parameters (``trial.derived_scores``), one column each.

    Rule: each parameter from the registry (``helpers.scores``), on the same sample's components converted to
    the units it states, that visit's clinical grades (the assessment nearest in date) and the participant's
    variables (``participants``: ADSL, for e.g. AGE and SEX); a parameter whose input is missing is missing,
    with the reason in ``<PARAMCD>__reason`` (no input is imputed). Why: scores follow the data; a silently
    imputed component would publish a number nobody measured.
    """
    grades = _grade_columns(trial)
    m = pd.concat([labs, _clinical_for(labs, clinical, grades)], axis=1)
    people = participants.set_index("SUBJID") if participants is not None else pd.DataFrame()
    for code in trial.derived_scores:
        p = trial.derived(code)
        factors = trial.component_factors(code)
        frame = pd.DataFrame({c: m[c.lower()] if f == 1.0 else m[c.lower()] * f for c, f in factors.items()},
                             index=m.index)
        for g in p.grades:
            frame[g.column] = m[g.column]
        for v in p.participant:
            if v not in people:
                raise ValueError(f"derived parameter {code} needs the participant variable {v} (ADSL); not given")
            frame[v] = lookup(m["subject_id"], people[v]).to_numpy()
        m[code] = scores.derive(p, frame)
        m[code + REASON] = _not_derivable(frame, p, trial).where(m[code].isna(), pd.NA)
    return m


def derive_base_chg(adlb: pd.DataFrame) -> pd.DataFrame:
    """ADLB with BASE, CHG and PCHG.

    Rule: BASE is the value of the baseline record (ABLFL = Y) of the same participant and parameter;
    after baseline CHG = AVAL - BASE and PCHG = 100 CHG / BASE (missing when BASE is 0).
    Source: CDISC ADaM BDS. Why: every change-from-baseline analysis reads these columns.
    """
    out = adlb.copy()
    base = out[out["ABLFL"] == "Y"].set_index(["USUBJID", "PARAMCD"])["AVAL"]
    key = pd.MultiIndex.from_frame(out[["USUBJID", "PARAMCD"]])
    out["BASE"] = base.reindex(key).to_numpy()
    post = out["AVISITN"] > 0
    out["CHG"] = (out["AVAL"] - out["BASE"]).where(post)
    out["PCHG"] = (100 * out["CHG"] / out["BASE"]).where(post & (out["BASE"] != 0))
    return out


def derive_analysis_visit(nominal: pd.Series, ady: pd.Series, trial: Trial) -> pd.Series:
    """Analysis visit code per record.

    Rule: a scheduled record keeps its nominal visit (a study day outside the window is reported as a
    protocol deviation, not moved); an unscheduled one takes the visit whose window (trial file) holds
    its study day, else stays unscheduled and is never analysed. Source: ADaM analysis windowing
    (AVISIT). Why: an unscheduled sample inside a window is as good as the scheduled one.
    """
    out = nominal.astype("object").copy()
    unscheduled = nominal.eq(UNSCHEDULED)
    for v in trial.visits:
        inside = unscheduled & v.holds(ady).fillna(False).astype(bool) & out.eq(UNSCHEDULED)
        out[inside] = v.code
    return out


def derive_anl01fl(adlb: pd.DataFrame, trial: Trial) -> pd.Series:
    """ANL01FL = Y on the one record analysed per participant, parameter and analysis visit.

    Rule (stated in the book): among records with a value, the one whose study day is nearest the
    visit's target day; ties go to the scheduled record, then the earlier date. Why: repeated and
    unscheduled samples are kept, but each analysis needs one value per visit (ADaM ANLzzFL).
    """
    target = adlb["AVISITN"].map({v.week: v.day for v in trial.visits})
    cand = adlb[adlb["AVAL"].notna() & adlb["AVISITN"].notna()]
    gap = (cand["ADY"].astype("Float64") - target[cand.index]).abs().fillna(np.inf)
    order = cand.assign(_gap=gap.astype(float), _uns=cand["VISIT"].eq(UNSCHEDULED), _adt=cand["ADT"])
    order = order.sort_values(["USUBJID", "PARAMCD", "AVISITN", "_gap", "_uns", "_adt"], na_position="last")
    chosen = order.drop_duplicates(["USUBJID", "PARAMCD", "AVISITN"]).index
    return pd.Series(np.where(adlb.index.isin(chosen), "Y", ""), index=adlb.index)


def build_adlb(export: Export, trial: Trial, adsl: pd.DataFrame) -> pd.DataFrame:
    """Laboratory analysis dataset, long: one row per participant, parameter and sample.

    Parameters are the trial's lab panel and the derived scores it allows. A value missing in the
    export is a row with AVAL missing, LBSTAT = NOT DONE and the reason (LBREASND); a result beyond a
    limit keeps its reported text (AVALC) and ACENSFL ("<" or ">"). Baseline is the analysed record
    of the trial's baseline visit; ANL01FL marks the one record per visit that the analyses use.
    """
    wide = derive_scores_by_visit(export["labs"], export["clinical"], trial, adsl)
    params = {t.column: (t.code, t.label, t.unit) for t in trial.lab_panel}
    params.update({code: (code, trial.derived(code).label, trial.derived(code).unit) for code in trial.derived_scores})
    for c in params:
        for suffix in (REASON, CENS, REPORTED):
            if c + suffix not in wide:
                wide[c + suffix] = pd.NA
    parts = []
    for c in params:
        one = wide[["subject_id", "visit", "lab_date", c, c + REASON, c + CENS, c + REPORTED]].copy()
        one.columns = ["subject_id", "visit", "lab_date", "AVAL", "REASON", "CENS", "REPORTED"]
        parts.append(one.assign(col=c))
    long = pd.concat(parts, ignore_index=True)
    long = long[long["AVAL"].notna() | long["REASON"].notna() | long["col"].isin([t.column for t in trial.lab_panel])]
    sl = adsl.set_index("SUBJID")
    ady = study_day(long["lab_date"], long["subject_id"].map(trial.day_one(sl["TRTSDT"], sl["RANDDT"])))
    avisit = derive_analysis_visit(long["visit"], ady, trial)
    visits = {v.code: v for v in trial.visits}
    aval = pd.to_numeric(long["AVAL"], errors="coerce").astype(float)
    adlb = pd.DataFrame({
        "STUDYID": trial.id,
        "USUBJID": long["subject_id"].map(sl["USUBJID"]),
        "TRT01P": long["subject_id"].map(sl["TRT01P"]),
        "TRT01PN": long["subject_id"].map(sl["TRT01PN"]),
        "PARAMCD": long["col"].map({c: p[0] for c, p in params.items()}),
        "PARAM": long["col"].map({c: label_with_unit(*p[1:]) for c, p in params.items()}),
        "VISIT": long["visit"].astype(str),
        "AVISIT": avisit.map({c: v.label for c, v in visits.items()}).fillna(UNSCHEDULED_LABEL) if len(avisit)
        else avisit.astype(object),
        "AVISITN": avisit.map({c: v.week for c, v in visits.items()}).astype("Int64"),
        "ADT": long["lab_date"],
        "ADY": ady,
        "AVAL": aval,
        "AVALC": long["REPORTED"].astype("object"),
        "ACENSFL": long["CENS"].astype("object"),
        "AVALU": long["col"].map({c: p[2] for c, p in params.items()}),
        "LBSTAT": np.where(np.isnan(aval), "NOT DONE", ""),
        "LBREASND": long["REASON"].astype("object").where(np.isnan(aval), pd.NA),
    })
    adlb["ANL01FL"] = derive_anl01fl(adlb, trial)
    adlb["ABLFL"] = derive_ablfl(adlb, trial)
    adlb = derive_base_chg(adlb)
    param_order = {p[0]: i for i, p in enumerate(params.values())}
    adlb = adlb.assign(_p=adlb["PARAMCD"].map(param_order), _v=adlb["AVISITN"].astype("Float64").fillna(np.inf))
    adlb = adlb.sort_values(["USUBJID", "_p", "_v", "ADT"], kind="stable")
    return adlb.drop(columns=["_p", "_v"]).reset_index(drop=True)


def derive_ablfl(adlb: pd.DataFrame, trial: Trial) -> pd.Series:
    """ABLFL = Y on the analysed record (ANL01FL = Y) of the trial's baseline visit.

    Source: CDISC ADaM BDS. Why: with repeated baseline samples, the one nearest the target day is
    the baseline, by the same rule as every other visit.
    """
    return pd.Series(np.where((adlb["AVISITN"] == trial.baseline_visit.week) & (adlb["ANL01FL"] == "Y"), "Y", ""),
                     index=adlb.index)


def analysis_records(adlb: pd.DataFrame) -> pd.DataFrame:
    """The records the analyses use (ANL01FL = Y): one value per participant, parameter and visit."""
    return adlb[adlb["ANL01FL"] == "Y"].reset_index(drop=True)


def build_adtte(adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Time-to-event dataset from randomization (days, AVAL = ADT - STARTDT + 1), administratively censored at the
    horizon: one parameter per ``time_to_event`` entry of the trial file, in its order.

    Rule (as admiral's event and censoring sources): the event is the first of the entry's event types (ties: the
    first listed); the first of its censoring event types, when strictly earlier, censors at its date; otherwise
    the participant is censored at the last contact. EVNTDESC is the event type's label in upper case, else
    "LAST KNOWN ALIVE". At an interim look (data cut-off), a participant still in follow-up is censored at the
    cut-off or at last contact, whichever is earlier (EVNTDESC "ONGOING AT DATA CUT-OFF").
    """
    start = adsl["RANDDT"]
    ongoing = adsl["EOSSTT"].eq("ONGOING") & adsl["DCUTDT"].notna()
    last_contact = adsl["LSTALVDT"].where(~ongoing, adsl[["LSTALVDT", "DCUTDT"]].min(axis=1))
    alive = pd.Series(np.where(ongoing, "ONGOING AT DATA CUT-OFF", "LAST KNOWN ALIVE"), index=adsl.index)
    rows = []
    for t in trial.time_to_event:
        event_date, event_desc = _first_of(adsl, trial, t.events)
        censor_date, censor_desc = _first_of(adsl, trial, t.censors)
        event = event_date.notna() & ~(censor_date < event_date)
        censored_by = censor_date.notna() & ~event
        date = event_date.where(event, censor_date.where(censored_by, last_contact))
        desc = event_desc.where(event, censor_desc.where(censored_by, alive))
        rows.append(_tte(t.code, t.label, adsl, start, event, date, trial.horizon_days, desc))
    return pd.concat(rows, ignore_index=True)


def _first_of(adsl: pd.DataFrame, trial: Trial, codes: tuple[str, ...]) -> tuple[pd.Series, pd.Series]:
    """Per participant, the date of the first of ``codes`` (event types) and its label in upper case (ties: the
    first listed); missing where none happened."""
    date = pd.Series(pd.NaT, index=adsl.index, dtype="datetime64[ns]")
    desc = pd.Series(pd.NA, index=adsl.index, dtype="object")
    for code in codes:
        d = pd.to_datetime(adsl[event_date_column(trial, code)])
        earlier = d.notna() & ~(date <= d)
        date, desc = date.where(~earlier, d), desc.where(~earlier, trial.event_label(code).upper())
    return date, desc


def _tte(paramcd, param, adsl, start, event, date, horizon, desc) -> pd.DataFrame:
    aval = (date - start).dt.days + 1
    beyond = aval > horizon
    return pd.DataFrame({
        "STUDYID": adsl["STUDYID"], "USUBJID": adsl["USUBJID"], "TRT01P": adsl["TRT01P"],
        "TRT01PN": adsl["TRT01PN"], "PARAMCD": paramcd, "PARAM": f"{param} (days)", "STARTDT": start,
        "ADT": date.where(~beyond, start + pd.Timedelta(days=horizon - 1)),
        "AVAL": aval.clip(upper=horizon).astype("Int64"),
        "CNSR": np.where(event & ~beyond, 0, 1),
        "EVNTDESC": np.where(beyond, "ALIVE AT HORIZON", np.asarray(desc, dtype=object)),
    })


def build_adam(export: Export, trial: Trial) -> dict[str, pd.DataFrame]:
    """ADSL, ADLB and ADTTE from a validated export."""
    adsl = build_adsl(export, trial)
    adlb = build_adlb(export, trial, adsl)
    adsl = derive_baseline_covariates(adsl, analysis_records(adlb), export["clinical"], trial)
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
