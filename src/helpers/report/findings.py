"""The findings in words: the verdict sentences of the analysis plan and the summary page's key-results table.

Every sentence is computed from the results (``helpers.analysis.findings``); the book glues them, the
summary page first and every chapter's opening after it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import findings, outcomes, survival
from helpers.analysis.findings import MET, NOT_ESTIMABLE, NOT_MET, Decision
from helpers.report.outcomes import effect_text
from helpers.report.prose import estimate_text, format_p, p_text
from helpers.report.tables import fixed
from helpers.trial import Trial

TEST_NAMES = {"fisher": "Fisher's exact test on survivors at the horizon", "logrank": "log-rank test",
              "cox": "Cox model Wald test"}
SAFETY_LABELS = {"DEATH": "Deaths, n (%)", "SERIOUS": "Serious adverse events: participants, n (%)"}


def _pct(x: float) -> str:
    return "not estimable" if pd.isna(x) else f"{fixed(100 * x, 1)}%"


def primary_sentence(d: Decision, surv: pd.DataFrame, trial: Trial) -> str:
    """'The primary endpoint was not met: survival at day 168 was ... ; Fisher's exact test P = ... (two-sided
    level 0.05).'"""
    pe = trial.primary_endpoint
    km = surv[(surv["PARAMCD"] == pe.code) & surv["ANALYSIS"].str.startswith(survival.KM_SURVIVAL)]
    order = [a.label for a in trial.experimental_arms] + [trial.control.label]
    km = km.set_index("ARM").loc[order].reset_index()
    by_arm = " versus ".join(f"{estimate_text(r.ESTIMATE, r.LCL, r.UCL, scale=100, digits=1, unit='%', ci_label='95% CI')}"
                             f" with {r.ARM}" for r in km.itertuples())
    verdict = {MET: "was met", NOT_MET: "was not met", NOT_ESTIMABLE: "could not be assessed"}[d.outcome]
    test = f"{TEST_NAMES[trial.primary_test]} {p_text(d.p_value)}" if not np.isnan(d.p_value) else \
        f"{TEST_NAMES[trial.primary_test]} not estimable"
    if int(surv.loc[(surv["PARAMCD"] == pe.code) & (surv["ANALYSIS"] == survival.LOGRANK), "EVENTS"].sum()) == 0:
        noun = "deaths" if trial.tte(pe.code).events == ("DEATH",) else "events"
        return (f"The primary endpoint ({pe.label.lower()}) {verdict}: no {noun} were recorded in any arm by day "
                f"{trial.horizon_days}, so survival does not differ between the arms and no effect can be estimated; "
                f"{test} (two-sided level {trial.alpha:g}).")
    return (f"The primary endpoint ({pe.label.lower()}) {verdict}: survival at day {trial.horizon_days} was "
            f"{by_arm}; {test} (two-sided level {trial.alpha:g}).")


def key_secondary_sentence(d: Decision, mmrm: pd.DataFrame, trial: Trial) -> str:
    """The key secondary endpoint's verdict, or why it was not tested confirmatorily, with its estimate."""
    e = trial.endpoint(trial.key_secondary)
    what = f"the change in {e.label} from baseline to {trial.last_visit.label}"
    row = findings.key_secondary_row(mmrm, trial)
    estimate = ("not estimable" if row is None or pd.isna(row["estimate"]) else
                f"{row['TRT01P']} versus {trial.control.label}, {effect_text(row, e.unit)}")
    if d.outcome == findings.NOT_TESTED:
        return (f"The key secondary endpoint, {what}, was not tested confirmatorily, because the primary endpoint "
                f"was not met; descriptively (MMRM, unadjusted), {estimate}.")
    verdict = {MET: "was met", NOT_MET: "was not met", NOT_ESTIMABLE: "could not be assessed"}[d.outcome]
    return f"The key secondary endpoint, {what}, {verdict} (MMRM): {estimate}."


def interim_prefix(trial: Trial) -> str:
    return (f"Interim build (data cut-off {trial.cutoff:%d %B %Y}): these are not the final results. "
            if trial.is_interim else "")


def verdicts(surv: pd.DataFrame, mmrm: pd.DataFrame, trial: Trial) -> dict[str, str]:
    """The verdict sentences: ``verdict_primary``, ``verdict_key`` (empty without a key secondary endpoint) and
    ``verdict``, both together as every chapter opens."""
    ds = findings.decisions(surv, mmrm, trial)
    out = {"verdict_primary": interim_prefix(trial) + primary_sentence(ds[0], surv, trial),
           "verdict_key": key_secondary_sentence(ds[1], mmrm, trial) if len(ds) > 1 else ""}
    out["verdict"] = " ".join(v for v in out.values() if v)
    return out


def chapter_verdict(adtte: pd.DataFrame, adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> str:
    """The sentence that opens a chapter: the plan's verdicts, from the primary analysis and the key MMRM."""
    surv = survival.survival_results(adtte, adsl, trial, paramcds=(trial.primary_endpoint.code,))
    return verdicts(surv, findings.key_mmrm(adlb, adsl, trial), trial)["verdict"]


# ------------------------------------------------------------------ the key-results table

def _effect_text(r) -> str:
    if r.ROLE == "safety" or r.ANALYSIS.startswith(survival.KM_SURVIVAL):
        return ""
    if r.ANALYSIS.startswith(survival.KM_DIFFERENCE):
        return estimate_text(r.ESTIMATE, r.LCL, r.UCL, scale=100, digits=1)
    return estimate_text(r.ESTIMATE, r.LCL, r.UCL)


def _arm_text(r) -> str:
    """A per-arm cell: Kaplan-Meier survival in % (95% CI), or participants with an event n (%)."""
    if r.ROLE == "safety":
        return f"{int(r.EVENTS)} ({fixed(100 * r.ESTIMATE, 1)}%)"
    if r.ANALYSIS.startswith(survival.KM_SURVIVAL):
        return estimate_text(r.ESTIMATE, r.LCL, r.UCL, scale=100, digits=1)
    return ""


def _finding_label(r, trial: Trial) -> str:
    if r.ROLE == "safety":
        return SAFETY_LABELS[r.ENDPOINT]
    if r.ROLE == "primary":
        a = r.ANALYSIS
        if a.startswith(survival.KM_SURVIVAL):
            return f"Primary: survival at day {trial.horizon_days}, % (95% CI)"
        if a.startswith(survival.KM_DIFFERENCE):
            return f"Primary: survival at day {trial.horizon_days}, difference in % points"
        return {survival.COX: "Primary: hazard ratio of death (Cox)",
                survival.FISHER: "Primary: odds ratio of being alive at the horizon (Fisher)"}[a]
    e = trial.endpoint(r.ENDPOINT)
    effect = "ratio" if outcomes.LOG_SCALE in r.ANALYSIS else "difference"
    prefix = "Key secondary: " if r.ROLE == "key secondary" else ""
    return f"{prefix}{e.label_with_unit}, change to {trial.last_visit.label}: {effect}"


def _p_text(r) -> str:
    p = format_p(r.PVALUE)
    if r.ROLE == "secondary" and not pd.isna(r.PHOLM):
        p += f" (Holm {format_p(r.PHOLM)})"
    return p


def key_results_table(key: pd.DataFrame, trial: Trial, header: dict[str, str]) -> pd.DataFrame:
    """Report layout of ``findings.key_results``: one row per finding, the per-arm values where there are any
    (survival, deaths, serious adverse events), the effect with its 95% CI and the p-value (Holm-adjusted in
    brackets for the secondary endpoints)."""
    rows = {}
    for r in key.itertuples():
        label = _finding_label(r, trial)
        row = rows.setdefault(label, {"Finding": label} | {header[a.label]: "" for a in trial.arm_order}
                              | {"Effect (95% CI)": "", "P": ""})
        if _arm_text(r):
            row[header[r.ARM]] = _arm_text(r)
        else:
            row["Effect (95% CI)"], row["P"] = _effect_text(r), _p_text(r)
    return pd.DataFrame(list(rows.values()))


def key_results_csv(key: pd.DataFrame) -> pd.DataFrame:
    """The tidy key results with TEXT, the cell the summary page shows for the row (the browser test compares them)."""
    return key.assign(TEXT=[_arm_text(r) or _effect_text(r) for r in key.itertuples()])


def summary_numbers(trial: Trial, adsl: pd.DataFrame, source: str, surv: pd.DataFrame, mmrm: pd.DataFrame
                    ) -> dict[str, str]:
    """The summary page's glued text: the trial in three lines and the verdicts."""
    n = adsl["TRT01P"].value_counts()
    arms = " and ".join(f"{a.label} ({a.description}, n = {int(n.get(a.label, 0))})" for a in trial.arm_order)
    return {
        "trial_what": f"{trial.id}: {trial.title}.",
        "trial_design": (f"{trial.design.capitalize()} trial in {trial.population}; {len(adsl)} participants "
                         f"randomized to {arms}."),
        "trial_endpoint": (f"Primary endpoint: {trial.primary_endpoint.label.lower()}, tested by "
                           f"{TEST_NAMES[trial.primary_test]} at two-sided level {trial.alpha:g}"
                           + (f"; key secondary endpoint: change in {trial.endpoint(trial.key_secondary).label} "
                              f"to {trial.last_visit.label}, tested only if the primary endpoint is met."
                              if trial.key_secondary else ".")),
        "source": source,
    } | verdicts(surv, mmrm, trial)


KEY_RESULTS_NOTES = ("Survival: Kaplan-Meier estimate with log(-log) 95% CI; difference: arm minus control, Greenwood "
                     "standard errors. Hazard and odds ratios: experimental arm against control. Secondary endpoints: "
                     "MMRM contrast at the last visit (ratio of geometric means for log-scale endpoints), unadjusted P "
                     "with the Holm-adjusted P in brackets. Deaths and serious adverse events: safety population by "
                     "arm as treated; N in the column headers is the randomized population.")
