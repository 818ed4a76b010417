"""The findings in words: the verdict sentences of the analysis plan and the summary page's key-results table.

Every sentence is computed from the results (``helpers.analysis.findings``); the book glues them, the
summary page first and every chapter's opening after it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import findings, outcomes, survival
from helpers.analysis.ard import build_ard
from helpers.analysis.findings import MET, NOT_ESTIMABLE, NOT_MET, Decision
from helpers.report.outcomes import effect_text
from helpers.report.prose import change_text, estimate_text, fisher_name, format_p, km_name, p_text, primary_what
from helpers.report.tables import fixed
from helpers.trial import Trial

TEST_NAMES = {"fisher": "Fisher's exact test on survivors at the horizon", "logrank": "log-rank test",
              "cox": "Cox model Wald test"}
PRIMARY_PREFIX = "Primary: "  # the key-results rows of the primary endpoint start so (the Word tables select them)
SAFETY_LABELS = {"DEATH": "Deaths, n (%)", "SERIOUS": "Serious adverse events: participants, n (%)"}


def _pct(x: float) -> str:
    return "not estimable" if pd.isna(x) else f"{fixed(100 * x, 1)}%"


VERDICT_WORDS = {MET: "was met", NOT_MET: "was not met", NOT_ESTIMABLE: "could not be assessed"}


def primary_test_text(trial: Trial) -> str:
    """How the primary endpoint is tested: the registered time-to-event test, or the MMRM contrast at its visit."""
    if trial.primary_endpoint.is_time_to_event:
        pe = trial.primary_endpoint
        return fisher_name(trial, pe.code) if trial.primary_test == "fisher" else TEST_NAMES[trial.primary_test]
    return f"the MMRM contrast at {trial.primary_visit.label}"


def _contrast_text(row: pd.Series | None, code: str, trial: Trial) -> str:
    """'Drug A versus Placebo, difference -1.02 points (95% CI ...; P = ...)' from an MMRM row
    (a log-scale endpoint's row already holds the ratio of geometric means), or 'not estimable'."""
    if row is None or pd.isna(row["estimate"]):
        return "not estimable"
    return f"{row['TRT01P']} versus {trial.control.label}, {effect_text(row, trial.endpoint(code).unit)}"


def primary_sentence(d: Decision, surv: pd.DataFrame, mmrm: pd.DataFrame, trial: Trial) -> str:
    """'The primary endpoint was not met: survival at day 168 was ... ; Fisher's exact test P = ... (two-sided
    level 0.05).' For a continuous primary endpoint: 'The primary endpoint (change in X from baseline to Week 24)
    was met (MMRM, two-sided level 0.05): <arm> versus <control>, difference ... (95% CI ...; P = ...).'"""
    pe = trial.primary_endpoint
    verdict = VERDICT_WORDS[d.outcome]
    if not pe.is_time_to_event:
        estimate = _contrast_text(findings.primary_row(mmrm, trial), pe.code, trial)
        return (f"The primary endpoint ({primary_what(trial)}) {verdict} (MMRM, two-sided level {trial.alpha:g}): "
                f"{estimate}.")
    km = surv[(surv["PARAMCD"] == pe.code) & surv["ANALYSIS"].str.startswith(survival.KM_SURVIVAL)]
    order = [a.label for a in trial.experimental_arms] + [trial.control.label]
    km = km.set_index("ARM").loc[order].reset_index()
    by_arm = " versus ".join(f"{estimate_text(r.ESTIMATE, r.LCL, r.UCL, scale=100, digits=1, unit='%', ci_label='95% CI')}"
                             f" with {r.ARM}" for r in km.itertuples())
    test = f"{primary_test_text(trial)} {p_text(d.p_value)}" if not np.isnan(d.p_value) else \
        f"{primary_test_text(trial)} not estimable"
    if int(surv.loc[(surv["PARAMCD"] == pe.code) & (surv["ANALYSIS"] == survival.LOGRANK), "EVENTS"].sum()) == 0:
        noun = "deaths" if trial.tte(pe.code).events == ("DEATH",) else "events"
        return (f"The primary endpoint ({primary_what(trial)}) {verdict}: no {noun} were recorded in any arm by day "
                f"{trial.horizon_days}, so no difference between the arms was shown and no effect can be estimated; "
                f"{test} (two-sided level {trial.alpha:g}).")
    return (f"The primary endpoint ({primary_what(trial)}) {verdict}: {km_name(trial, pe.code)} at day {trial.horizon_days} was "
            f"{by_arm}; {test} (two-sided level {trial.alpha:g}).")


def key_secondary_sentence(d: Decision, mmrm: pd.DataFrame, trial: Trial) -> str:
    """The key secondary endpoint's verdict, or why it was not tested confirmatorily, with its estimate."""
    what = f"the {change_text(trial.key_secondary, trial.last_visit.label, trial)}"
    estimate = _contrast_text(findings.key_secondary_row(mmrm, trial), trial.key_secondary, trial)
    if d.outcome == findings.NOT_TESTED:
        return (f"The key secondary endpoint, {what}, was not tested confirmatorily, because the primary endpoint "
                f"was not met; descriptively (MMRM, unadjusted), {estimate}.")
    return f"The key secondary endpoint, {what}, {VERDICT_WORDS[d.outcome]} (MMRM): {estimate}."


def interim_prefix(trial: Trial) -> str:
    return (f"Interim build (data cut-off {trial.cutoff:%d %B %Y}): these are not the final results. "
            if trial.is_interim else "")


def verdicts(surv: pd.DataFrame, mmrm: pd.DataFrame, trial: Trial) -> dict[str, str]:
    """The verdict sentences: ``verdict_primary``, ``verdict_key`` (empty without a key secondary endpoint) and
    ``verdict``, both together as every chapter opens. ``surv``: the survival results of a time-to-event primary
    endpoint; ``mmrm``: the MMRM of the endpoints tested by MMRM (``findings.key_mmrm``)."""
    ds = findings.ard_decisions(build_ard({"survival": surv, "mmrm": mmrm}, trial), trial)
    out = {"verdict_primary": interim_prefix(trial) + primary_sentence(ds[0], surv, mmrm, trial),
           "verdict_key": key_secondary_sentence(ds[1], mmrm, trial) if len(ds) > 1 else ""}
    out["verdict"] = " ".join(v for v in out.values() if v)
    return out


def chapter_verdict(cohort) -> str:
    """The sentence that opens a chapter: the plan's verdicts, from the cohort's findings (``Cohort.findings``,
    computed once per build and read here)."""
    f = cohort.findings
    return verdicts(f.survival, f.mmrm, cohort.trial)["verdict"]


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
    if r.ROLE == "primary" and not trial.primary_endpoint.is_time_to_event:
        effect = "ratio" if outcomes.LOG_SCALE in r.ANALYSIS else "difference"
        return (f"{PRIMARY_PREFIX}{trial.endpoint(r.ENDPOINT).label_with_unit}, change to {trial.primary_visit.label}: "
                f"{effect}")
    if r.ROLE == "primary":
        a, name = r.ANALYSIS, km_name(trial, trial.primary_endpoint.code)
        if a.startswith(survival.KM_SURVIVAL):
            return f"{PRIMARY_PREFIX}{name} at day {trial.horizon_days}, % (95% CI)"
        if a.startswith(survival.KM_DIFFERENCE):
            return f"{PRIMARY_PREFIX}{name} at day {trial.horizon_days}, difference in % points"
        death = name == "survival"
        return {survival.COX: f"{PRIMARY_PREFIX}hazard ratio of {'death' if death else 'an event'} (Cox)",
                survival.FISHER: f"{PRIMARY_PREFIX}odds ratio of being {'alive' if death else 'event-free'} at the horizon "
                                 "(Fisher)"}[a]
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
        "trial_endpoint": (f"Primary endpoint: {primary_what(trial)}, tested by "
                           f"{primary_test_text(trial)} at two-sided level {trial.alpha:g}"
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
CONTINUOUS_NOTES = ("Primary endpoint: MMRM contrast at {visit}, experimental arm against control (ratio of geometric "
                    "means for a log-scale endpoint). Secondary endpoints: MMRM contrast at the last visit, unadjusted "
                    "P with the Holm-adjusted P in brackets. Deaths and serious adverse events: safety population by "
                    "arm as treated; N in the column headers is the randomized population.")


def key_results_notes(trial: Trial) -> str:
    """The key-results table's notes, for the kind of primary endpoint the plan names."""
    if trial.primary_endpoint.is_time_to_event:
        return KEY_RESULTS_NOTES
    return CONTINUOUS_NOTES.format(visit=trial.primary_visit.label)
