"""The key findings and the confirmatory decisions of the analysis plan, from the chapters' own analyses.

The plan is a fixed sequence at two-sided level ``trial.alpha``: the primary endpoint's test first; the key
secondary endpoint is tested confirmatorily only if the primary endpoint was met. Everything else is supportive.
A time-to-event primary endpoint is tested by the plan's primary test (``trial.primary_test``: Fisher, log-rank
or Cox); a continuous one by the MMRM contrast at its visit (``trial.primary_visit``), as the outcomes chapter
computes it. The key secondary endpoint is the MMRM contrast at the last visit.

The verdicts read their p-values from the analysis results dataset (``ard_decisions``); the analyses run once per
build (``helpers.analysis.results.Results``) and the chapters read them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.analysis import outcomes, safety, survival
from helpers.analysis.ard import ard_value
from helpers.trial import Trial

PRIMARY_ANALYSIS = {"fisher": survival.FISHER, "logrank": survival.LOGRANK, "cox": survival.COX}
MET, NOT_MET, NOT_TESTED, NOT_ESTIMABLE = "met", "not met", "not tested", "not estimable"


@dataclass(frozen=True)
class Decision:
    """One confirmatory test of the plan: its p-value, the level and the outcome (met, not met, not tested)."""
    endpoint: str
    p_value: float
    alpha: float
    outcome: str


@dataclass(frozen=True)
class Findings:
    """The analyses the plan's verdicts rest on: ``survival``, the time-to-event primary endpoint's results
    (``survival.survival_results``; empty for a continuous primary endpoint), and ``mmrm``, the MMRM of the
    endpoints tested by MMRM (``key_mmrm``)."""
    survival: pd.DataFrame
    mmrm: pd.DataFrame


def mmrm_row(mmrm: pd.DataFrame, code: str, visit: str) -> pd.Series | None:
    """The MMRM contrast of ``code`` at ``visit`` (first experimental arm against control), or None when the
    model table has no such row."""
    rows = mmrm[(mmrm["PARAMCD"] == code) & (mmrm["AVISIT"] == visit)]
    return rows.iloc[0] if len(rows) else None


def primary_row(mmrm: pd.DataFrame, trial: Trial) -> pd.Series | None:
    """The MMRM contrast of a continuous primary endpoint at its visit (None for a time-to-event primary)."""
    if trial.primary_endpoint.is_time_to_event:
        return None
    return mmrm_row(mmrm, trial.primary_endpoint.code, trial.primary_visit.label)


def key_secondary_row(mmrm: pd.DataFrame, trial: Trial) -> pd.Series | None:
    """The MMRM contrast of the key secondary endpoint at the last visit, or None when it was not estimable."""
    return mmrm_row(mmrm, trial.key_secondary, trial.last_visit.label)


def _p(row: pd.Series | None) -> float:
    return float(row["p_value"]) if row is not None and pd.notna(row["p_value"]) else np.nan


def primary_p(survival_results: pd.DataFrame, mmrm: pd.DataFrame, trial: Trial) -> float:
    """The p-value of the primary endpoint's test (first experimental arm against control): the registered
    survival test for a time-to-event primary, the MMRM contrast at the primary visit for a continuous one."""
    if not trial.primary_endpoint.is_time_to_event:
        return _p(primary_row(mmrm, trial))
    rows = survival_results[(survival_results["PARAMCD"] == trial.primary_endpoint.code)
                            & (survival_results["ANALYSIS"] == PRIMARY_ANALYSIS[trial.primary_test])]
    return float(rows["PVALUE"].iloc[0]) if len(rows) else np.nan


def _outcome(p: float, alpha: float) -> str:
    return NOT_ESTIMABLE if np.isnan(p) else MET if p < alpha else NOT_MET


def decide(p1: float, p2: float, trial: Trial) -> list[Decision]:
    """The fixed-sequence decisions from the two p-values: primary, then the key secondary endpoint only if the
    primary was met (``p2`` is ignored without a key secondary endpoint)."""
    first = Decision(trial.primary_endpoint.code, p1, trial.alpha, _outcome(p1, trial.alpha))
    if trial.key_secondary is None:
        return [first]
    second = _outcome(p2, trial.alpha) if first.outcome == MET else NOT_TESTED
    return [first, Decision(trial.key_secondary, p2, trial.alpha, second)]


def decisions(survival_results: pd.DataFrame, mmrm: pd.DataFrame, trial: Trial) -> list[Decision]:
    """``decide`` on the p-values of the result tables (the design's simulated trials use it)."""
    return decide(primary_p(survival_results, mmrm, trial), _p(key_secondary_row(mmrm, trial)), trial)


def ard_decisions(ard: pd.DataFrame, trial: Trial) -> list[Decision]:
    """``decide`` on the p-values of the analysis results dataset (``helpers.analysis.ard``): the book's verdicts.
    The primary test's row of the first experimental arm (the log-rank test has one row for all arms), and the
    MMRM contrasts at the primary and the last visit."""
    pe, arm = trial.primary_endpoint, trial.experimental_arms[0].label
    if pe.is_time_to_event:
        analysis = PRIMARY_ANALYSIS[trial.primary_test]
        arm_key = {} if analysis == survival.LOGRANK else {"GROUP1_LEVEL": arm}
        p1 = ard_value(ard, "p", RESULT="survival", PARAMCD=pe.code, ANALYSIS_ID=f"survival:{analysis}", **arm_key)
    else:
        p1 = ard_value(ard, "p", RESULT="mmrm", PARAMCD=pe.code, AVISIT=trial.primary_visit.label, GROUP1_LEVEL=arm)
    p2 = np.nan if trial.key_secondary is None else ard_value(
        ard, "p", RESULT="mmrm", PARAMCD=trial.key_secondary, AVISIT=trial.last_visit.label, GROUP1_LEVEL=arm)
    return decide(p1, p2, trial)


def mmrm_codes(trial: Trial) -> list[str]:
    """The endpoints the plan tests by MMRM: a continuous primary endpoint, then the key secondary endpoint."""
    return ([] if trial.primary_endpoint.is_time_to_event else [trial.primary_endpoint.code]) + \
        ([trial.key_secondary] if trial.key_secondary is not None else [])


def key_mmrm(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """The MMRM of the endpoints the plan tests by MMRM alone (``mmrm_codes``), as the outcomes chapter fits them."""
    codes = mmrm_codes(trial)
    if not codes:
        return pd.DataFrame(columns=outcomes.MODEL_COLUMNS)
    return outcomes.mmrm_table(adlb, trial, adsl, codes=codes)


def key_results(survival_results: pd.DataFrame, mmrm: pd.DataFrame, holm: pd.DataFrame,
                ae: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """The summary page's table in tidy form, one row per finding: ROLE, ENDPOINT, ANALYSIS, ARM, REFERENCE,
    ESTIMATE, LCL, UCL, PVALUE, N, EVENTS (the report layer words it)."""
    pe = trial.primary_endpoint
    if pe.is_time_to_event:
        s = survival_results[survival_results["PARAMCD"] == pe.code]
        rows = [{"ROLE": "primary", "ENDPOINT": pe.code, "ANALYSIS": r.ANALYSIS, "ARM": r.ARM,
                 "REFERENCE": r.REFERENCE, "ESTIMATE": r.ESTIMATE, "LCL": r.LCL, "UCL": r.UCL, "PVALUE": r.PVALUE,
                 "N": r.N, "EVENTS": r.EVENTS}
                for r in s.itertuples() if r.ANALYSIS != survival.LOGRANK]
    else:
        at = mmrm[(mmrm["PARAMCD"] == pe.code) & (mmrm["AVISIT"] == trial.primary_visit.label)]
        rows = [{"ROLE": "primary", "ENDPOINT": pe.code, "ANALYSIS": f"MMRM {r.scale} at {r.AVISIT}", "ARM": r.TRT01P,
                 "REFERENCE": trial.control.label, "ESTIMATE": r.estimate, "LCL": r.lower, "UCL": r.upper,
                 "PVALUE": r.p_value, "N": r.n, "EVENTS": np.nan, "PHOLM": np.nan} for r in at.itertuples()]
    last = mmrm[mmrm["AVISIT"] == trial.last_visit.label]
    p_holm = dict(zip(holm["PARAMCD"], holm["p_holm"])) if len(holm) else {}
    for e in trial.endpoints:
        if e.code == pe.code and not pe.is_time_to_event:
            continue
        for r in last[last["PARAMCD"] == e.code].itertuples():
            rows.append({"ROLE": "key secondary" if e.code == trial.key_secondary else "secondary",
                         "ENDPOINT": e.code, "ANALYSIS": f"MMRM {r.scale} at {r.AVISIT}", "ARM": r.TRT01P,
                         "REFERENCE": trial.control.label, "ESTIMATE": r.estimate, "LCL": r.lower, "UCL": r.upper,
                         "PVALUE": r.p_value, "N": r.n, "EVENTS": np.nan, "PHOLM": p_holm.get(e.code, np.nan)})
    for category in ("DEATH", "SERIOUS"):
        for r in safety.rows_of(ae, category).itertuples():
            rows.append({"ROLE": "safety", "ENDPOINT": category, "ANALYSIS": "participants with an event (as treated)",
                         "ARM": r.ARM, "REFERENCE": "", "ESTIMATE": r.PCT / 100, "LCL": np.nan, "UCL": np.nan,
                         "PVALUE": np.nan, "N": r.N, "EVENTS": r.N_PARTICIPANTS})
    out = pd.DataFrame(rows)
    out["SECONDARY_ORDER"] = out["ROLE"].map({"primary": 0, "key secondary": 1, "secondary": 2, "safety": 3})
    return out.sort_values("SECONDARY_ORDER", kind="stable").drop(columns="SECONDARY_ORDER").reset_index(drop=True)
