"""The outcomes chapter as the reader sees it: report layouts of the analysis tables, and the numbers
and sentences its prose glues (from ``helpers.analysis.outcomes``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import cohort
from helpers.analysis.mmrm import STRUCTURE_NAMES
from helpers.analysis.outcomes import (
    LOG_SCALE,
    NOT_ASSESSED,
    class_result_names,
    fallbacks,
    holm_significant,
    intercurrent_counts,
)
from helpers.report.prose import death_role_text, estimate_text, format_p, population_text, primary_what, word_list
from helpers.report.tables import JournalTable, fixed, journal_table, recorded_decimals
from helpers.trial import Trial

COVARIANCE_NAMES = STRUCTURE_NAMES
NO_CLASSES = "not derived in this trial: it has no derived parameter with classes"


def covariance_name(code: str) -> str:
    """The covariance structure in words ('us' -> 'unstructured'); anything else unchanged."""
    return COVARIANCE_NAMES.get(code, code)


# ------------------------------------------------------------------ tables

def lab_by_visit_report(summary: pd.DataFrame, adlb: pd.DataFrame, trial: Trial, header: dict[str, str]) -> pd.DataFrame:
    """Report layout of ``lab_by_visit``: rows endpoint x visit x arm (N in the arm's label), columns n, mean (SD)
    and median [Q1, Q3] of the value and of the change from baseline; one decimal more than the data are recorded with."""
    out = []
    for e in trial.endpoints:
        dec = recorded_decimals(adlb.loc[adlb["PARAMCD"] == e.code, "AVAL"]) + 1
        s = summary[summary["PARAMCD"] == e.code]
        for v in trial.visits:
            for arm in trial.arms:
                row = {"Endpoint": e.label_with_unit, "Visit": v.label, "Arm": header[arm.label]}
                for var, what in (("AVAL", "Value"), ("CHG", "Change")):
                    cell = s[(s["AVISITN"] == v.week) & (s["TRT01P"] == arm.label) & (s["variable"] == var)]
                    r = cell.iloc[0] if len(cell) else None
                    n = int(r["n"]) if r is not None else 0
                    row[f"{what}: n"] = f"{n}" if r is not None else ""
                    row[f"{what}: mean (SD)"] = ("" if not n else f"{r['mean']:.{dec}f} ({r['sd']:.{dec}f})" if n > 1
                                                 else f"{r['mean']:.{dec}f}")
                    row[f"{what}: median [Q1, Q3]"] = (f"{r['median']:.{dec}f} [{r['q1']:.{dec}f}, {r['q3']:.{dec}f}]"
                                                       if n else "")
                out.append(row)
    return pd.DataFrame(out)


def mean_ci_report(summary: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """Report layout of ``mean_ci_by_visit``: endpoint, statistic, arm (N), visit, n, mean and 95% CI."""
    return pd.DataFrame({
        "Endpoint": summary["PARAM"], "Statistic": summary["statistic"], "Arm": summary["TRT01P"].map(header),
        "Visit": summary["AVISIT"], "n": summary["n"], "Mean": summary["mean"].round(2),
        "95% CI": [f"{lo:.2f} to {hi:.2f}" for lo, hi in zip(summary["lower"], summary["upper"])],
    })


def model_report(model: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Report layout of a model table: endpoint, visit, effect with 95% CI (ratio or difference), p-value."""
    out = pd.DataFrame({
        "Endpoint": model["PARAM"], "Visit": model["AVISIT"], "Comparison": model["contrast"],
        "Effect": np.where(model["scale"] == LOG_SCALE, "ratio", "difference"),
        "Estimate (95% CI)": [estimate_text(est, lo, hi, digits=digits)
                              for est, lo, hi in zip(model["estimate"], model["lower"], model["upper"])],
        "n": model["n"],
        "df": model["df"].map(lambda x: "" if pd.isna(x) else f"{x:.1f}"),
        "P": model["p_value"].map(format_p)})
    if "p_holm" in model:
        out["P (Holm)"] = model["p_holm"].map(format_p)
    if "covariance" in model:
        out["Covariance"] = model["covariance"]
    return out


def holm_report(holm: pd.DataFrame) -> pd.DataFrame:
    """Report layout of ``holm_table``: ``model_report`` without visit and comparison (one visit, one family)."""
    return model_report(holm).drop(columns=["Visit", "Comparison"])


def shift_report(shift: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """Report layout of a shift table: one row per arm and baseline class, one column per class at the visit."""
    wide = shift.pivot_table(index=["TRT01P", "BASECLASS"], columns="POSTCLASS", values="n", sort=False)
    wide = wide[wide.sum(axis=1) > 0].astype(int)
    wide["Total"] = wide.sum(axis=1)
    wide.columns.name = None
    wide = wide.reset_index()
    wide["TRT01P"] = wide["TRT01P"].map(header)
    visit = shift["AVISIT"].iloc[0]
    post = [c for c in shift["POSTCLASS"].drop_duplicates()]
    return wide.rename(columns={"TRT01P": "Arm", "BASECLASS": "Baseline class"} | {c: f"{visit}: {c}" for c in post})


def best_class_report(best: pd.DataFrame, header: dict[str, str], best_class: str) -> pd.DataFrame:
    """Report layout of ``proportion_best_class``: arm (N), visit, n in the best class / assessed (%), Wilson 95%
    CI in %."""
    assessed = best["n_assessed"] > 0
    return pd.DataFrame({
        "Arm": best["TRT01P"].map(header), "Visit": best["AVISIT"],
        f"Class {best_class}, n / assessed (%)": [f"{a} / {n} ({fixed(100 * p, 0)}%)" if n else "0 / 0" for a, n, p in
                                                  zip(best["n_class_a"], best["n_assessed"], best["proportion"])],
        "95% CI (%)": [f"{fixed(100 * lo, 0)} to {fixed(100 * hi, 0)}" if ok else "" for lo, hi, ok in
                       zip(best["lower"], best["upper"], assessed)],
    })


def _classed(trial: Trial, paramcd: str | None):
    """The classed derived parameter shown (``paramcd``, default the trial's first), or None."""
    found = [p for p in trial.classed_scores if paramcd in (None, p.code)]
    return found[0] if found else None


def ends_or_missed(trial: Trial) -> str:
    """'death, kidney failure, withdrawal or a missed visit': why a visit has no value."""
    return word_list(["death"] + [e.label.lower() for e in trial.intercurrent_events] + ["withdrawal", "a missed visit"],
                     "or")


def intercurrent_numbers(adsl: pd.DataFrame, trial: Trial) -> dict[str, int | str]:
    """The estimand's intercurrent events for the prose: ``n_deaths``, ``n_withdrawn``, ``intercurrent_text`` ('death
    before a visit (3 participants died during follow-up), kidney failure (1) and withdrawal (2)') and
    ``hypothetical_condition`` ('alive, free of kidney failure and in follow-up')."""
    counts = intercurrent_counts(adsl, trial)
    parts = ([f"death before a visit ({counts['n_deaths']} participants died during follow-up)"]
             + [f"{e.label.lower()} ({counts[f'n_{e.code.lower()}']})" for e in trial.intercurrent_events]
             + [f"withdrawal ({counts['n_withdrawn']})"])
    free = word_list([e.label.lower() for e in trial.intercurrent_events], "or")
    return {"n_deaths": counts["n_deaths"], "n_withdrawn": counts["n_withdrawn"],
            "intercurrent_text": word_list(parts),
            "hypothetical_condition": f"alive, free of {free} and in follow-up" if trial.intercurrent_events
            else "alive and in follow-up"}


def show_class_shift(results: dict[str, pd.DataFrame], header: dict[str, str], trial: Trial,
                     paramcd: str | None = None) -> JournalTable:
    """The class shift table of a derived parameter with classes (the registry's; default the trial's first), or a
    row saying the trial has none."""
    p = _classed(trial, paramcd)
    name = class_result_names(p.code)[0] if p else None
    shift = shift_report(results[name], header) if name in results else pd.DataFrame()
    title = p.classes.label if p else "Class"
    notes = f"{p.classes.definition} " if p and p.classes.definition else ""
    return journal_table(shift, f"{title} shift from baseline to {trial.last_visit.label} by arm (participants)",
                         "tab-class-shift", group_columns=1, empty=f"{title} {NO_CLASSES}.",
                         notes=notes + f"Not assessed: no {p.label if p else 'value'} at the visit "
                               f"({ends_or_missed(trial)}).")


def show_best_class(results: dict[str, pd.DataFrame], header: dict[str, str], trial: Trial,
                    paramcd: str | None = None) -> JournalTable:
    """Participants in the best class of a derived parameter with classes by visit, or a row saying there is none."""
    p = _classed(trial, paramcd)
    name = class_result_names(p.code)[1] if p else None
    best = p.classes.levels[0] if p else ""
    table = best_class_report(results[name], header, best) if name in results else pd.DataFrame()
    title = p.classes.label if p else "Class"
    return journal_table(table, f"Participants in {title.lower() if p else 'the best class'} {best} by visit and arm",
                         "tab-best-class", group_columns=1, empty=f"{title} {NO_CLASSES}.",
                         notes="Wilson score confidence intervals; denominators: participants with a "
                               f"{p.label if p else 'value'} at the visit.")


# ------------------------------------------------------------------ prose

def effect_text(row: pd.Series, unit: str = "", digits: int = 2) -> str:
    """One model row as prose: 'ratio of geometric means 0.79 (95% CI 0.64 to 0.98; P = 0.035)' or
    'difference -0.99 points (95% CI -2.34 to 0.35; P = 0.141)' (``prose.estimate_text``)."""
    log = row["scale"] == LOG_SCALE
    return estimate_text(row["estimate"], row["lower"], row["upper"],
                         kind="ratio of geometric means" if log else "difference",
                         unit=f" {unit}" if unit and unit != "1" and not log else "",
                         p=row["p_value"], digits=digits, ci_label="95% CI")


def key_secondary_numbers(mmrm: pd.DataFrame, trial: Trial) -> dict[str, str]:
    """The key secondary endpoint's MMRM effect at the last visit and its covariance, as the prose reads them
    ('key_effect', 'key_covariance' and the whole 'key_sentence'); 'not estimable' with the reason when no participant
    was observed there (an early interim look); a sentence saying so when the trial file names none."""
    if not trial.key_secondary:
        return {"key_effect": "none", "key_covariance": "none",
                "key_sentence": "The trial file names no key secondary endpoint."}
    last = trial.last_visit.label
    label = f"the change in {trial.endpoint(trial.key_secondary).label} at {last.lower()}"
    rows = mmrm[(mmrm["PARAMCD"] == trial.key_secondary) & (mmrm["AVISIT"] == last)]
    if rows.empty:
        when = " by the data cut-off" if trial.is_interim else ""
        effect = f"not estimable: no participant was observed at {last.lower()}{when}"
        return {"key_effect": effect, "key_covariance": "none",
                "key_sentence": f"For the key secondary endpoint, {label}, the MMRM effect is {effect}."}
    key = rows.iloc[0]
    out = {"key_effect": effect_text(key, trial.endpoint(trial.key_secondary).unit),
           "key_covariance": covariance_name(key["covariance"])}
    return out | {"key_sentence": f"For the key secondary endpoint, {label}, the MMRM gives a {out['key_effect']} "
                                  f"(covariance structure: {out['key_covariance']})."}


def primary_effect_sentence(mmrm: pd.DataFrame, trial: Trial) -> str:
    """The continuous primary endpoint's MMRM effect at its visit, as the prose reads it; empty when the primary
    endpoint is time to event (the survival chapter analyses it)."""
    pe = trial.primary_endpoint
    if pe.is_time_to_event:
        return ""
    visit = trial.primary_visit.label
    rows = mmrm[(mmrm["PARAMCD"] == pe.code) & (mmrm["AVISIT"] == visit)]
    if rows.empty:
        when = " by the data cut-off" if trial.is_interim else ""
        effect = f"is not estimable: no participant was observed at {visit.lower()}{when}"
    else:
        r = rows.iloc[0]
        effect = (f"gives a {effect_text(r, trial.endpoint(pe.code).unit)} (covariance structure: "
                  f"{covariance_name(r['covariance'])})")
    return f"For the primary endpoint, the {primary_what(trial)}, the MMRM {effect}."


def role_text(trial: Trial) -> str:
    """Which endpoint is primary and where it is analysed: here (a continuous primary, the other endpoints secondary)
    or in the survival chapter (every endpoint here secondary)."""
    pe = trial.primary_endpoint
    if pe.is_time_to_event:
        return (f"The primary endpoint, {primary_what(trial)}, is a time-to-event endpoint analysed in the survival "
                "chapter; every endpoint of this chapter is secondary.")
    others = len(trial.endpoints) - 1
    return (f"The primary endpoint is the {primary_what(trial)}: this chapter analyses it, by its MMRM contrast at "
            f"{trial.primary_visit.label.lower()}. The other {others} endpoint{'s are' if others != 1 else ' is'} "
            "secondary.")


def hierarchy_text(trial: Trial) -> str:
    """The analysis plan's fixed sequence: the primary endpoint first, then the key secondary endpoint if the trial
    file names one."""
    first = f"the primary endpoint, {primary_what(trial)}, is tested first"
    if not trial.key_secondary:
        return f"{first}; the trial file names no key secondary endpoint, so no other test is confirmatory."
    return (f"{first}; only if it is significant at the two-sided {100 * trial.alpha:g}% level is the key secondary "
            f"endpoint, the change in {trial.endpoint(trial.key_secondary).label} at "
            f"{trial.last_visit.label.lower()} from the MMRM, tested confirmatorily at the same level.")


def log_scale_text(trial: Trial) -> str:
    """Which endpoints the trial file puts on the log scale, and what their effects are then."""
    logs = [e.label.lower() for e in trial.endpoints if e.log]
    if not logs:
        return "Every endpoint is analysed on its own scale, so its effects are differences in means."
    return (f"The endpoints the trial file puts on the log scale ({word_list(logs)}) are analysed on it, so their "
            "effects are ratios of geometric means; the other endpoints are analysed on their own scale.")


def fallback_sentence(mmrm: pd.DataFrame) -> str:
    """Prose on the covariance structures used: all as requested, or which endpoints fell back to what."""
    f = fallbacks(mmrm)
    if f.empty:
        return "The unstructured covariance matrix converged for every endpoint; no fallback was needed."
    parts = [f"{r.PARAM}: {covariance_name(r.covariance.split(' ')[0])}" for r in f.itertuples()]
    return ("The unstructured fit did not converge for every endpoint, and the next structure in the order "
            "unstructured, heterogeneous Toeplitz, heterogeneous AR(1), AR(1), compound symmetry was used: "
            + "; ".join(parts) + ".")


def best_class_text(results: dict[str, pd.DataFrame], visit: str, trial: Trial) -> str:
    """Participants in the best class of the trial's first classed derived parameter at a visit, by arm, as the
    prose reads it."""
    p = _classed(trial, None)
    name = class_result_names(p.code)[1] if p else None
    if name not in results:
        return NO_CLASSES
    rows = results[name].query("AVISIT == @visit")
    return "; ".join(f"{r.TRT01P} {r.n_class_a} of {r.n_assessed} assessed ({100 * r.proportion:.0f}%)"
                     for r in rows.itertuples())


def chapter_numbers(results: dict[str, pd.DataFrame], adsl: pd.DataFrame, trial: Trial, source: str) -> dict[str, str | int]:
    """Every number and phrase the outcomes chapter's prose glues, from ``outcomes.outcome_results``."""
    mmrm, holm = results["mmrm"], results["holm"]
    last = trial.last_visit.label
    significant = [trial.endpoint(code).label.lower() for code in holm_significant(holm, trial.alpha)]
    return {
        "source": source,
        "population": population_text(trial),
        "n_per_arm": ", ".join(f"{n} to {label}" for label, n in cohort.arm_n(adsl, trial).items()),
        "control": trial.control.label,
        "experimental": " and ".join(a.label for a in trial.experimental_arms),
        "followup": ", ".join(v.label.lower() for v in trial.followup_visits),
        "last_visit": last.lower(),
        "n_endpoints": len(trial.endpoints),
        "primary_label": primary_what(trial),
        "key_label": (f"the change in {trial.endpoint(trial.key_secondary).label} at {last.lower()}" if trial.key_secondary
                      else "none"),
        "log_endpoints": ", ".join(e.label.lower() for e in trial.endpoints if e.log),
        "log_scale_sentence": log_scale_text(trial),
        "role": role_text(trial),
        "hierarchy": hierarchy_text(trial),
        "death_role": death_role_text(trial),
        "primary_effect_sentence": primary_effect_sentence(mmrm, trial),
        **intercurrent_numbers(adsl, trial),
        **key_secondary_numbers(mmrm, trial),
        "fallback_sentence": fallback_sentence(mmrm),
        "n_holm": len(holm),
        "holm_significant": ", ".join(significant) or "none",
        "class_name": _classed(trial, None).classes.label if _classed(trial, None) else "No class",
        "best_class": _classed(trial, None).classes.levels[0] if _classed(trial, None) else "none",
        "alpha_level": f"{100 * trial.alpha:g}%",
        "class_a_last": best_class_text(results, last, trial),
    }
