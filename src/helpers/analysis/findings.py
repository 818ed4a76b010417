"""The key findings and the confirmatory decisions of the analysis plan, from the chapters' own analyses.

The plan is a fixed sequence at two-sided level ``trial.alpha``: the primary endpoint's test
(``trial.primary_test``) first; the key secondary endpoint is tested confirmatorily only if the primary
endpoint was met. Everything else is supportive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.analysis import outcomes, safety, survival
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


def primary_p(results: pd.DataFrame, trial: Trial) -> float:
    """The p-value of the primary endpoint's registered test (first experimental arm against control)."""
    rows = results[(results["PARAMCD"] == trial.primary_endpoint.code)
                   & (results["ANALYSIS"] == PRIMARY_ANALYSIS[trial.primary_test])]
    return float(rows["PVALUE"].iloc[0]) if len(rows) else np.nan


def key_secondary_row(mmrm: pd.DataFrame, trial: Trial) -> pd.Series | None:
    """The MMRM contrast of the key secondary endpoint at the last visit, or None when it was not estimable."""
    rows = mmrm[(mmrm["PARAMCD"] == trial.key_secondary) & (mmrm["AVISIT"] == trial.last_visit.label)]
    return rows.iloc[0] if len(rows) else None


def decisions(survival_results: pd.DataFrame, mmrm: pd.DataFrame, trial: Trial) -> list[Decision]:
    """The fixed-sequence decisions: primary, then the key secondary endpoint only if the primary was met."""
    p1 = primary_p(survival_results, trial)
    first = Decision(trial.primary_endpoint.code, p1, trial.alpha,
                     NOT_ESTIMABLE if np.isnan(p1) else MET if p1 < trial.alpha else NOT_MET)
    if trial.key_secondary is None:
        return [first]
    row = key_secondary_row(mmrm, trial)
    p2 = float(row["p_value"]) if row is not None else np.nan
    if first.outcome != MET:
        second = NOT_TESTED
    else:
        second = NOT_ESTIMABLE if np.isnan(p2) else MET if p2 < trial.alpha else NOT_MET
    return [first, Decision(trial.key_secondary, p2, trial.alpha, second)]


def key_mmrm(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """The MMRM of the key secondary endpoint alone (what a chapter's opening verdict needs)."""
    if trial.key_secondary is None:
        return pd.DataFrame(columns=outcomes.MODEL_COLUMNS)
    return outcomes.mmrm_table(adlb, trial, adsl, codes=[trial.key_secondary])


def key_results(survival_results: pd.DataFrame, mmrm: pd.DataFrame, holm: pd.DataFrame,
                ae: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """The summary page's table in tidy form, one row per finding: ROLE, ENDPOINT, ANALYSIS, ARM, REFERENCE,
    ESTIMATE, LCL, UCL, PVALUE, N, EVENTS (the report layer words it)."""
    pe = trial.primary_endpoint.code
    s = survival_results[survival_results["PARAMCD"] == pe]
    rows = [{"ROLE": "primary", "ENDPOINT": pe, "ANALYSIS": r.ANALYSIS, "ARM": r.ARM, "REFERENCE": r.REFERENCE,
             "ESTIMATE": r.ESTIMATE, "LCL": r.LCL, "UCL": r.UCL, "PVALUE": r.PVALUE, "N": r.N, "EVENTS": r.EVENTS}
            for r in s.itertuples() if r.ANALYSIS != survival.LOGRANK]
    last = mmrm[mmrm["AVISIT"] == trial.last_visit.label]
    p_holm = dict(zip(holm["PARAMCD"], holm["p_holm"])) if len(holm) else {}
    for e in trial.endpoints:
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
