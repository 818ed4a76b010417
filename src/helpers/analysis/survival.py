"""Survival to the primary horizon by arm: Kaplan-Meier, log-rank, Cox, horizon survival, Fisher's exact.

Input is ADTTE (AVAL days from randomization, CNSR 1 = censored, already censored at the trial
file's horizon and at the censoring events its ``time_to_event`` entry names). Every function takes the ADTTE
parameter (``paramcd``); without one, the trial's lead time-to-event endpoint (``Trial.lead_tte``). Arms are analysed
as randomized (TRT01P). Statsmodels does the fitting where it offers the method
(``SurvfuncRight`` for Kaplan-Meier and Greenwood standard errors, ``survdiff`` for the log-rank
test, ``PHReg`` for Cox regression); the pointwise log-log confidence interval is computed here
from the Greenwood SE, because ``SurvfuncRight`` offers only simultaneous bands (log, arcsine).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from helpers.analysis import cohort
from helpers.trial import Trial

FEW_EVENTS = 10  # fewer events than this: the Cox hazard ratio is imprecise
KM_SURVIVAL = "KM survival"
KM_DIFFERENCE = "KM difference"
LOGRANK = "log-rank chi-square"
COX = "Cox hazard ratio (Efron ties)"
FISHER = "Fisher exact odds ratio (event-free at horizon)"
EVENT_FREE, EVENT, UNKNOWN = "Event-free", "Event", "Unknown"
STATUSES = (EVENT_FREE, EVENT, UNKNOWN)
DEATH, WITHDRAWAL = "Death", "Withdrawal"
NOT_YET_DUE, EXPECTED, MISSED = "Not yet due", "Expected", "Missed"
Z95 = stats.norm.ppf(0.975)


def causes(trial: Trial) -> list[str]:
    """Why follow-up ended before a visit, as the intercurrent-events table's columns: death, each intercurrent event
    of the trial file (its label), withdrawal."""
    return [DEATH] + [e.label for e in trial.intercurrent_events] + [WITHDRAWAL]


def _code(trial: Trial, paramcd: str | None) -> str:
    return trial.lead_tte.code if paramcd is None else paramcd


def no_events(adtte: pd.DataFrame, trial: Trial, paramcd: str | None = None) -> bool:
    """Whether the parameter has no event at all (e.g. a trial that recorded no deaths): nothing is estimable."""
    return int(_arm_data(adtte, _code(trial, paramcd))["EVENT"].sum()) == 0


def _arm_data(adtte: pd.DataFrame, paramcd: str) -> pd.DataFrame:
    d = adtte[adtte["PARAMCD"] == paramcd]
    return pd.DataFrame({"USUBJID": d["USUBJID"].to_numpy(), "ARM": d["TRT01P"].to_numpy(),
                         "TIME": d["AVAL"].to_numpy(dtype=float), "EVENT": 1 - d["CNSR"].to_numpy(dtype=int),
                         "EVNTDESC": d["EVNTDESC"].to_numpy()})


def loglog_ci(surv, se, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise CI for S(t) on the log(-log) scale (Kalbfleisch and Prentice 2002, sec. 1.3; R's conf.type="log-log").

    With the Greenwood variance var(S) = S^2 sum d/(n(n-d)), var(log(-log S)) = var(S) / (S log S)^2;
    the limits are S^exp(+z sd) (lower) and S^exp(-z sd) (upper). Undefined (NaN) where S is 0 or 1.
    """
    surv, se = np.asarray(surv, dtype=float), np.asarray(se, dtype=float)
    z = stats.norm.ppf(1 - alpha / 2)
    ok = (surv > 0) & (surv < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.where(ok, se / (surv * np.abs(np.log(np.where(ok, surv, 0.5)))), np.nan)
        lower = np.where(ok, surv ** np.exp(z * sd), np.nan)
        upper = np.where(ok, surv ** np.exp(-z * sd), np.nan)
    return lower, upper


def kaplan_meier(time, event, alpha: float = 0.05) -> pd.DataFrame:
    """Kaplan-Meier table at each distinct time (events or censorings), starting at time 0.

    Columns: TIME, N_RISK, N_EVENT, N_CENSOR, SURV, SE (Greenwood), LCL, UCL (log-log).
    S and its SE come from statsmodels ``SurvfuncRight``; censor-only times carry S forward.
    """
    time, event = np.asarray(time, dtype=float), np.asarray(event, dtype=int)
    times = np.unique(time)
    n_risk = np.array([(time >= t).sum() for t in times])
    n_event = np.array([((time == t) & (event == 1)).sum() for t in times])
    surv = np.ones(len(times))
    se = np.zeros(len(times))
    if event.sum():
        sf = SurvfuncRight(time, event)
        idx = np.searchsorted(sf.surv_times, times, side="right") - 1
        has = idx >= 0
        surv[has] = sf.surv_prob[idx[has]]
        se[has] = sf.surv_prob_se[idx[has]]
    lcl, ucl = loglog_ci(surv, se, alpha)
    table = pd.DataFrame({"TIME": times, "N_RISK": n_risk, "N_EVENT": n_event, "N_CENSOR": n_risk - n_event
                          - np.append(n_risk[1:], 0), "SURV": surv, "SE": se, "LCL": lcl, "UCL": ucl})
    start = pd.DataFrame({"TIME": [0.0], "N_RISK": [len(time)], "N_EVENT": [0], "N_CENSOR": [0], "SURV": [1.0],
                          "SE": [0.0], "LCL": [np.nan], "UCL": [np.nan]})
    return pd.concat([start, table[table["TIME"] > 0]], ignore_index=True)


def km_by_arm(adtte: pd.DataFrame, trial: Trial, paramcd: str | None = None) -> pd.DataFrame:
    """Kaplan-Meier tables of one ADTTE parameter, one block per arm (ARM = label), in trial order."""
    paramcd = _code(trial, paramcd)
    d = _arm_data(adtte, paramcd)
    blocks = [kaplan_meier(g["TIME"], g["EVENT"]).assign(ARM=arm.label)
              for arm in trial.arms for g in [d[d["ARM"] == arm.label]] if len(g)]
    return pd.concat(blocks, ignore_index=True)[["ARM"] + list(blocks[0].columns[:-1])]


def km_estimates(adtte: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """``km_by_arm`` of every time-to-event endpoint of the trial, one after the other (PARAMCD last)."""
    parts = [km_by_arm(adtte, trial, t.code).assign(PARAMCD=t.code) for t in trial.time_to_event]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def km_of(km: pd.DataFrame, trial: Trial, paramcd: str | None = None) -> pd.DataFrame:
    """One endpoint's rows of ``km_estimates`` (default: the lead endpoint), as ``km_by_arm`` gives them."""
    paramcd = _code(trial, paramcd)
    return km[km["PARAMCD"] == paramcd].drop(columns="PARAMCD").reset_index(drop=True)


def survival_at(km: pd.DataFrame, t: float) -> pd.Series:
    """S(t) with SE and log-log CI from a Kaplan-Meier table: the last row at or before t."""
    return km[km["TIME"] <= t].iloc[-1][["SURV", "SE", "LCL", "UCL"]]


def number_at_risk(adtte: pd.DataFrame, trial: Trial, paramcd: str, days) -> pd.DataFrame:
    """Participants at risk (followed and event-free: AVAL >= t) per arm (rows) at each day t (columns)."""
    d = _arm_data(adtte, paramcd)
    out = pd.DataFrame({int(t): [int((d.loc[d["ARM"] == a.label, "TIME"] >= max(t, 0)).sum()) for a in trial.arms]
                        for t in days}, index=[a.label for a in trial.arms])
    out.index.name = "ARM"
    return out


# Round intervals for the number at risk, in days: 4, 8, 12, 13 and 26 weeks, then 1, 2 and 4 years.
RISK_STEPS = (28, 56, 84, 91, 182, 365, 730, 1461)
YEAR_DAYS = 365


def risk_step(trial: Trial, max_columns: int = 8) -> int:
    """The interval (days) of the number-at-risk columns: the shortest round one giving at most ``max_columns``
    columns from day 0 to the horizon (every 4 weeks for a horizon up to 28 weeks; in years for long ones)."""
    h = trial.horizon_days
    step = next((s for s in RISK_STEPS if h // s + 1 <= max_columns), None)
    return step if step is not None else YEAR_DAYS * int(np.ceil(h / YEAR_DAYS / (max_columns - 1)))


def risk_days(trial: Trial, max_columns: int = 8) -> list[int]:
    """Days at which the number at risk is shown (and the time axis ticked): every ``risk_step`` to the horizon."""
    return [int(d) for d in np.arange(0, trial.horizon_days + 1, risk_step(trial, max_columns))]


def event_counts(adtte: pd.DataFrame, trial: Trial, paramcd: str | None = None) -> pd.DataFrame:
    """Per arm: participants, events and censorings by reason (EVNTDESC), in trial order."""
    paramcd = _code(trial, paramcd)
    d = _arm_data(adtte, paramcd)
    reasons = sorted(d.loc[d["EVENT"] == 0, "EVNTDESC"].unique())
    rows = []
    for arm in trial.arms:
        g = d[d["ARM"] == arm.label]
        row = {"ARM": arm.label, "N": len(g), "EVENTS": int(g["EVENT"].sum()), "CENSORED": int((g["EVENT"] == 0).sum())}
        row.update({f"CENSORED: {r}": int(((g["EVENT"] == 0) & (g["EVNTDESC"] == r)).sum()) for r in reasons})
        rows.append(row)
    return pd.DataFrame(rows)


def _design(d: pd.DataFrame, trial: Trial) -> tuple[np.ndarray, list[str]]:
    x = np.column_stack([(d["ARM"] == a.label).to_numpy(dtype=float) for a in trial.experimental_arms])
    return x, [a.label for a in trial.experimental_arms]


def logrank(adtte: pd.DataFrame, trial: Trial, paramcd: str | None = None, strata: str | None = None) -> dict:
    """Log-rank test of equal survival across arms (statsmodels ``survdiff``), optionally stratified by an ADTTE column."""
    paramcd = _code(trial, paramcd)
    d = _arm_data(adtte, paramcd)
    st = None if strata is None else adtte.loc[adtte["PARAMCD"] == paramcd, strata].to_numpy()
    if d["EVENT"].sum() == 0:
        return {"CHISQ": np.nan, "DF": d["ARM"].nunique() - 1, "PVALUE": np.nan}
    chisq, p = survdiff(d["TIME"].to_numpy(), d["EVENT"].to_numpy(), d["ARM"].to_numpy(), strata=st)
    return {"CHISQ": float(chisq), "DF": d["ARM"].nunique() - 1, "PVALUE": float(p)}


def cox_hr(adtte: pd.DataFrame, trial: Trial, paramcd: str | None = None, strata: str | None = None) -> pd.DataFrame:
    """Hazard ratio of each arm vs the control arm: Cox model with Efron ties (statsmodels ``PHReg``), Wald 95% CI.

    Not estimable (NaN, with the reason) when an arm compared has no event: the partial
    likelihood then has no finite maximum.
    """
    paramcd = _code(trial, paramcd)
    d = _arm_data(adtte, paramcd)
    x, labels = _design(d, trial)
    control = trial.control.label
    events = d.groupby("ARM")["EVENT"].sum()
    rows = [{"ARM": lab, "REFERENCE": control, "EVENTS_ARM": int(events.get(lab, 0)),
             "EVENTS_REF": int(events.get(control, 0)), "HR": np.nan, "LCL": np.nan, "UCL": np.nan,
             "PVALUE": np.nan, "NOTE": ""} for lab in labels]
    no_event = [a for a in labels + [control] if events.get(a, 0) == 0]
    if no_event:
        for r in rows:
            r["NOTE"] = f"not estimable: no events in {', '.join(no_event)}"
        return pd.DataFrame(rows)
    st = None if strata is None else adtte.loc[adtte["PARAMCD"] == paramcd, strata].to_numpy()
    fit = PHReg(d["TIME"].to_numpy(), x, status=d["EVENT"].to_numpy(), ties="efron", strata=st).fit()
    ci = np.exp(fit.conf_int())
    for k, r in enumerate(rows):
        r.update(HR=float(np.exp(fit.params[k])), LCL=float(ci[k, 0]), UCL=float(ci[k, 1]),
                 PVALUE=float(fit.pvalues[k]))
    return pd.DataFrame(rows)


def survival_at_horizon(adtte: pd.DataFrame, trial: Trial, paramcd: str | None = None) -> pd.DataFrame:
    """Kaplan-Meier S(horizon) per arm (log-log 95% CI) and each arm minus control (Greenwood SEs, Wald 95% CI).

    S(horizon) is not estimable (missing) in an arm where nobody was followed to the horizon and the curve
    has not reached 0, as at an early interim look: the curve is not defined beyond the last follow-up.

    Difference CI: (S1 - S0) +/- z sqrt(SE1^2 + SE0^2), independent arms (Klein and Moeschberger 2003, sec. 7.8).
    """
    paramcd = _code(trial, paramcd)
    km = km_by_arm(adtte, trial, paramcd)
    h = trial.horizon_days
    rows = []
    at = {}
    followed = _arm_data(adtte, paramcd).groupby("ARM")["TIME"].max()
    for arm in trial.arms:
        s = survival_at(km[km["ARM"] == arm.label], h)
        if followed.get(arm.label, 0) < h and s["SURV"] > 0:
            s = s * np.nan
        at[arm.label] = s
        rows.append({"ARM": arm.label, "STATISTIC": "survival", "ESTIMATE": s["SURV"], "SE": s["SE"],
                     "LCL": s["LCL"], "UCL": s["UCL"]})
    control = trial.control.label
    for arm in trial.experimental_arms:
        a, b = at[arm.label], at[control]
        diff, se = a["SURV"] - b["SURV"], float(np.hypot(a["SE"], b["SE"]))
        rows.append({"ARM": f"{arm.label} - {control}", "STATISTIC": "difference", "ESTIMATE": diff, "SE": se,
                     "LCL": diff - Z95 * se, "UCL": diff + Z95 * se})
    return pd.DataFrame(rows)


def status_at_horizon(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str | None = None) -> pd.DataFrame:
    """Each participant's status at the horizon: Event (by then), Event-free (followed to the horizon, or completed
    the study at the visit that assesses it), else Unknown (censored earlier: a censoring intercurrent event,
    withdrawal, a cut-off, or a study that ended before the participant reached the horizon)."""
    paramcd = _code(trial, paramcd)
    d = _arm_data(adtte, paramcd)
    completed = d["USUBJID"].map(adsl.set_index("USUBJID")["EOSSTT"]).eq("COMPLETED")
    followed = (d["TIME"] >= trial.horizon_days) | (completed & (d["TIME"] >= trial.horizon_assessed_from))
    d["STATUS"] = np.select([d["EVENT"] == 1, followed], [EVENT, EVENT_FREE], UNKNOWN)
    return d[["USUBJID", "ARM", "STATUS"]]


def status_counts(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str | None = None) -> pd.DataFrame:
    """``status_at_horizon`` counted by arm: PARAMCD, ARM, STATUS, n, N (randomized in the arm), pct."""
    paramcd = _code(trial, paramcd)
    st = status_at_horizon(adtte, adsl, trial, paramcd)
    rows = []
    for arm in trial.arms:
        s = st.loc[st["ARM"] == arm.label, "STATUS"]
        rows += [{"PARAMCD": paramcd, "ARM": arm.label, "STATUS": k, "n": int((s == k).sum()), "N": len(s)}
                 for k in STATUSES]
    out = pd.DataFrame(rows, columns=["PARAMCD", "ARM", "STATUS", "n", "N"])
    return out.assign(pct=100 * out["n"] / out["N"].where(out["N"] > 0))


FISHER_NOT_ESTIMABLE = "not estimable: an arm has no participant whose status at the horizon is known"


def fisher_survivors(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str | None = None) -> pd.DataFrame:
    """Event-free (for survival: alive) at the horizon by arm, and Fisher's exact test (two-sided, scipy) of each
    arm vs control on the 2 x 2 table of event-free / event; the odds ratio is of being event-free.

    Participants whose status at the horizon is unknown are left out of the table. When it leaves an arm with
    nobody (e.g. at an interim cut-off no one followed to the horizon), the test is not estimable: ODDS_RATIO and
    PVALUE are NaN and NOT_ESTIMABLE gives the reason (else "").
    """
    paramcd = _code(trial, paramcd)
    st = status_at_horizon(adtte, adsl, trial, paramcd)
    counts = pd.crosstab(st["ARM"], st["STATUS"]).reindex(index=[a.label for a in trial.arms],
                                                           columns=list(STATUSES)).fillna(0).astype(int)
    control = trial.control.label
    rows = []
    for arm in trial.experimental_arms:
        table = counts.loc[[arm.label, control], [EVENT_FREE, EVENT]].to_numpy()
        empty = [a.label for a, row in zip((arm, trial.control), table) if row.sum() == 0]
        odds, p = stats.fisher_exact(table) if not empty else (np.nan, np.nan)
        reason = f"{FISHER_NOT_ESTIMABLE} ({' and '.join(empty)})" if empty else ""
        rows.append({"ARM": arm.label, "REFERENCE": control, "EVENT_FREE_ARM": int(table[0, 0]), "EVENT_ARM": int(table[0, 1]),
                     "EVENT_FREE_REF": int(table[1, 0]), "EVENT_REF": int(table[1, 1]),
                     "UNKNOWN_ARM": int(counts.loc[arm.label, UNKNOWN]),
                     "UNKNOWN_REF": int(counts.loc[control, UNKNOWN]), "ODDS_RATIO": float(odds), "PVALUE": float(p),
                     "NOT_ESTIMABLE": reason})
    return pd.DataFrame(rows)


def survival_results(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial,
                     paramcds: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Tidy results of the chapter, one row per estimate: PARAMCD, ANALYSIS, ARM, REFERENCE, ESTIMATE, LCL, UCL, PVALUE,
    EVENTS, N; for ``paramcds`` (default: every time-to-event endpoint of the trial file)."""
    h = trial.horizon_days
    paramcds = tuple(t.code for t in trial.time_to_event) if paramcds is None else paramcds
    km_name = {"survival": KM_SURVIVAL, "difference": KM_DIFFERENCE}
    rows = []
    for p in paramcds:
        counts = event_counts(adtte, trial, p).set_index("ARM")
        for r in survival_at_horizon(adtte, trial, p).itertuples():
            ref = "" if r.STATISTIC == "survival" else trial.control.label
            arm = r.ARM if r.STATISTIC == "survival" else r.ARM.split(" - ")[0]
            arms = [arm] + ([ref] if ref else [])
            rows.append({"PARAMCD": p, "ANALYSIS": f"{km_name[r.STATISTIC]} at day {h}", "ARM": arm,
                         "REFERENCE": ref, "ESTIMATE": r.ESTIMATE, "LCL": r.LCL, "UCL": r.UCL, "PVALUE": np.nan,
                         "EVENTS": counts.loc[arms, "EVENTS"].sum(), "N": counts.loc[arms, "N"].sum()})
        lr = logrank(adtte, trial, p)
        rows.append({"PARAMCD": p, "ANALYSIS": LOGRANK, "ARM": "all", "REFERENCE": "",
                     "ESTIMATE": lr["CHISQ"], "LCL": np.nan, "UCL": np.nan, "PVALUE": lr["PVALUE"],
                     "EVENTS": int(counts["EVENTS"].sum()), "N": int(counts["N"].sum())})
        for r in cox_hr(adtte, trial, p).itertuples():
            rows.append({"PARAMCD": p, "ANALYSIS": COX, "ARM": r.ARM,
                         "REFERENCE": r.REFERENCE, "ESTIMATE": r.HR, "LCL": r.LCL, "UCL": r.UCL, "PVALUE": r.PVALUE,
                         "EVENTS": r.EVENTS_ARM + r.EVENTS_REF, "N": counts.loc[[r.ARM, r.REFERENCE], "N"].sum()})
        for r in fisher_survivors(adtte, adsl, trial, p).itertuples():
            rows.append({"PARAMCD": p, "ANALYSIS": FISHER, "ARM": r.ARM,
                         "REFERENCE": r.REFERENCE, "ESTIMATE": r.ODDS_RATIO, "LCL": np.nan, "UCL": np.nan,
                         "PVALUE": r.PVALUE, "EVENTS": r.EVENT_ARM + r.EVENT_REF,
                         "N": r.EVENT_FREE_ARM + r.EVENT_ARM + r.EVENT_FREE_REF + r.EVENT_REF})
    out = pd.DataFrame(rows)
    out[["EVENTS", "N"]] = out[["EVENTS", "N"]].astype(int)
    return out


def intercurrent_events(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """By arm (as randomized) and visit: follow-up ended before the visit by death, an intercurrent event of the trial
    file or withdrawal (cumulative; columns ``causes``), visits not yet due at an interim cut-off, and visits missed
    by those still expected (``cohort.visit_status`` rule)."""
    status = cohort.visit_status(adsl, adlb, trial)
    status["cause"] = status["reason"].map({"DEATH": DEATH} | {e.label.upper(): e.label
                                                               for e in trial.intercurrent_events})
    status.loc[status["ended"] & status["cause"].isna(), "cause"] = WITHDRAWAL
    rows = []
    for arm in trial.arms:
        for v in trial.visits:
            d = status[(status["ARMCD"] == arm.code) & (status["Visit"] == v.label)]
            expected = d["expected"]
            rows.append({"Arm": arm.label, "Visit": v.label, "Randomized": len(d)}
                        | {cause: int((d["cause"] == cause).sum()) for cause in causes(trial)}
                        | {NOT_YET_DUE: int(d["not_yet_due"].sum()), EXPECTED: int(expected.sum()),
                           MISSED: int((expected & ~d["attended"]).sum())})
    return pd.DataFrame(rows)
