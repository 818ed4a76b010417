"""Chapter 7 (missing data and estimands) for the reader: the numbers and sentences its prose glues,
and its tables, from ``analysis.sensitivity`` and the analyses it combines."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import cohort, outcomes, survival
from helpers.analysis.imputation import MI_SEED, N_BURN_IN, N_IMPUTATIONS, observed_visits, worse_sign
from helpers.analysis.sensitivity import (
    DIFFERENCE,
    MULTIPLE_IMPUTATION,
    PRIMARY,
    RATIO,
    TIPPING_POINT,
    WIN_PROBABILITY,
    WORST_RANK,
)
from helpers.analysis.tipping import conclusion
from helpers.analysis.worst_rank import (
    DEATH,
    MISSING,
    OBSERVED,
    ranked_events,
    worst_rank_counts,
)
from helpers.report.cohort import arm_header
from helpers.report.prose import death_role_text, early_ends_text, estimate_text, format_p, population_text, word_list
from helpers.report.tables import JournalTable, journal_table
from helpers.trial import Trial, shown_unit

NOT_REACHED = "not reached"
NOT_ESTIMABLE = "not estimable"
NOT_ESTIMABLE_ROW = "Not estimable: too few participants observed at the last visit."


# ------------------------------------------------------------------ prose

def result_text(row: pd.Series, unit: str = "", digits: int = 2) -> str:
    """One result row as prose: 'difference -1.15 points (95% CI -2.79 to 0.48; P = 0.154)' or
    'win probability 0.63 (95% CI 0.42 to 0.85; P = 0.215)'."""
    kind = {WIN_PROBABILITY: "win probability", DIFFERENCE: "difference"}.get(row["measure"], row["measure"])
    u = f" {shown_unit(unit)}" if shown_unit(unit) and row["measure"] == DIFFERENCE else ""
    return estimate_text(row["estimate"], row["lower"], row["upper"], kind=kind, unit=u, p=row["p_value"],
                         digits=digits, ci_label="95% CI")


def analysis_conclusion(row: pd.Series, worse_sign: int, alpha: float) -> str:
    """The conclusion of one result row at two-sided level ``alpha`` (the trial's); a win probability above 0.5
    favours the experimental arm."""
    if row["measure"] == WIN_PROBABILITY:
        return conclusion(0.5 - row["estimate"], row["p_value"], 1, alpha)
    return conclusion(row["estimate"] - (1.0 if row["measure"] == RATIO else 0.0), row["p_value"], worse_sign, alpha)


def agreement_sentence(results: pd.DataFrame, trial: Trial, paramcd: str) -> str:
    """Whether the primary MMRM, the MI and the worst-rank analyses reach the same conclusion at the trial's
    alpha, per arm."""
    sign, alpha = worse_sign(trial, paramcd), trial.alpha
    d = results[results["analysis"] != TIPPING_POINT].dropna(subset=["p_value"])
    parts = []
    for contrast, g in d.groupby(d["contrast"].str.split(" - | vs ", regex=True).str[0], sort=False):
        found = {r["analysis"]: analysis_conclusion(r, sign, alpha) for _, r in g.iterrows()}
        who = f"For {contrast} against {trial.control.label}, " if len(trial.arms) > 2 else ""
        if len(set(found.values())) == 1:
            part = (f"{who}all {len(found)} analyses reach the same conclusion at the {100 * alpha:g}% level: "
                    f"{next(iter(found.values()))}.")
        else:
            part = (f"{who}the conclusions differ at the {100 * alpha:g}% level: "
                    + "; ".join(f"{a}: {c}" for a, c in found.items()) + ".")
        parts.append(part[:1].upper() + part[1:])
    return " ".join(parts)


def delta_scale(e) -> str:
    """What a delta is measured in: the endpoint's unit, or the natural-log scale of a log endpoint."""
    return "natural-log scale" if e.log else (shown_unit(e.unit) or "no unit")


def delta_text(delta: float, e, spec: str = ".2f") -> str:
    """A delta with its scale: '0.57 umol/L', or '0.57 on the natural-log scale (values x 1.77)' for a log endpoint,
    whose delta multiplies the imputed values by e^delta."""
    if e.log:
        return f"{delta:{spec}} on the {delta_scale(e)} (values \u00d7 {np.exp(delta):.2f})"
    return f"{delta:{spec}} {shown_unit(e.unit)}".strip()


def tipping_sentence(tp: dict, trial: Trial, paramcd: str, arm: str) -> str:
    """The tipping point in words."""
    e = trial.endpoint(paramcd)
    worse = "higher" if worse_sign(trial, paramcd) == 1 else "lower"
    if not np.isfinite(tp["delta"]):
        return (f"The conclusion ({tp['from_conclusion']}) holds over the whole grid, even if every missing "
                f"{e.label} change in the {arm} arm were {delta_text(tp['grid_max'], e, 'g')} {worse} (worse) "
                f"than predicted under missing at random.")
    return (f"The conclusion changes from '{tp['from_conclusion']}' to '{tp['to_conclusion']}' when the missing "
            f"{e.label} changes in the {arm} arm are {delta_text(tp['delta'], e)} {worse} (worse) than "
            f"predicted under missing at random.")


def followup_text(wide: pd.DataFrame, trial: Trial) -> str:
    """The follow-up visits the analyses use, naming those left out for want of data:
    'week 4, week 24 (week 12 left out: no values)'."""
    used = set(observed_visits(wide, trial))
    shown = ", ".join(v.label.lower() for v in trial.followup_visits if v.label in used)
    empty = [v.label.lower() for v in trial.followup_visits if v.label not in used]
    if not empty or not shown:
        return shown or ", ".join(v.label.lower() for v in trial.followup_visits)
    return f"{shown} ({' and '.join(empty)} left out: no values)"


def chapter_numbers(a: dict, adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial, paramcd: str,
                    source: str) -> dict[str, str | int]:
    """Every number and phrase the sensitivity chapter's prose glues, from ``sensitivity_analyses``.
    When the analyses are not estimable, each result phrase and sentence says why."""
    e = trial.endpoint(paramcd)
    last = trial.last_visit.label
    events = survival.intercurrent_events(adsl, adlb, trial)
    role = "primary endpoint" if paramcd == trial.primary_endpoint.code else "key secondary endpoint"
    at_last = events[events["Visit"] == last]
    experimental = [arm.label for arm in trial.experimental_arms]
    out = {
        "source": source,
        "n_per_arm": ", ".join(f"{n} to {label}" for label, n in cohort.arm_n(adsl, trial).items()),
        "population": population_text(trial),
        "endpoint_role": role,
        "endpoint": e.label, "unit": e.unit, "better": e.better, "last_visit": last.lower(),
        "experimental": " and ".join(experimental), "control": trial.control.label,
        "followup": followup_text(a["wide"], trial), "n_itt": len(a["wide"]),
        "n_missing_last": int(a["wide"][last].isna().sum()), "n_death_last": int(at_last[survival.DEATH].sum()),
        "n_wd_last": int(at_last[survival.WITHDRAWAL].sum()),
        **{f"n_{e.code.lower()}_last": int(at_last[e.label].sum()) for e in trial.intercurrent_events},
        "n_missed_last": int(at_last[survival.MISSED].sum()), "n_not_due_last": int(at_last[survival.NOT_YET_DUE].sum()),
        "ends_last": ends_by_visit_text(at_last, trial), "early_ends": early_ends_text(trial),
        "hypothetical_condition": ("alive, free of " + word_list([e.label.lower() for e in trial.intercurrent_events], "or")
                                   + " and in follow-up") if trial.intercurrent_events else "alive and in follow-up",
        "ice_handling": ice_handling_text(trial),
        "death_role": death_role_text(trial).replace("d", "D", 1),
        "mmrm_formula": outcomes.mmrm_formula(trial), "m": N_IMPUTATIONS, "mi_seed": MI_SEED, "burn_in": N_BURN_IN,
    }
    if "not_estimable" in a:
        why = a["not_estimable"]
        scores = a.get("scores", pd.DataFrame({"CATEGORY": pd.Series(dtype=str)}))
        detail = why.removeprefix(f"{NOT_ESTIMABLE}: ")
        phrase, sentence = f"result that is {NOT_ESTIMABLE} ({detail})", f"{NOT_ESTIMABLE.capitalize()}: {detail}."
        return out | {k: phrase for k in ("primary_text", "mi_text", "wr_text")} | {
            "tipping_text": sentence, "agreement": sentence, "grid_text": why, "mi_df": "", "mi_fmi": "",
            "n_mmrm": outcomes.analysis_data(adlb, trial, paramcd, adsl)["USUBJID"].nunique(),
            "wr_n": int((scores["CATEGORY"] != MISSING).sum()),
            "wr_excluded": int((scores["CATEGORY"] == MISSING).sum())}
    row = {r["analysis"]: r for _, r in a["results"].iterrows()}
    mi = a["mi"].iloc[0]
    return out | {
        "n_mmrm": int(row[PRIMARY]["n"]), "primary_text": result_text(row[PRIMARY], e.unit),
        "mi_text": result_text(row[MULTIPLE_IMPUTATION], e.unit), "mi_df": f"{mi['df']:.1f}",
        "mi_fmi": f"{mi['fmi_lambda']:.2f}", "wr_text": result_text(row[WORST_RANK]), "wr_n": int(row[WORST_RANK]["n"]),
        "wr_excluded": int((a["scores"]["CATEGORY"] == MISSING).sum()),
        "tipping_text": " ".join(tipping_sentence(a["tipping"][arm], trial, paramcd, arm) for arm in experimental),
        "grid_text": (f"0 to {a['grid']['delta'].max():g} {'on the natural-log scale' if e.log else e.unit} "
                      f"in steps of {a['grid']['delta'].diff().max():g}"),
        "agreement": agreement_sentence(a["results"], trial, paramcd),
    }


def ends_by_visit_text(at_visit: pd.DataFrame, trial: Trial) -> str:
    """'3 participants had died, 1 had ended follow-up by kidney failure and 0 had withdrawn' (from one visit's rows
    of ``survival.intercurrent_events``)."""
    parts = [f"{int(at_visit[survival.DEATH].sum())} participants had died"]
    parts += [f"{int(at_visit[e.label].sum())} had ended follow-up by {e.label.lower()}" for e in trial.intercurrent_events]
    return word_list(parts + [f"{int(at_visit[survival.WITHDRAWAL].sum())} had withdrawn"])


def ice_handling_text(trial: Trial) -> str:
    """How the worst-rank composite treats each intercurrent event of the trial file (counted as an event of the
    lead time-to-event endpoint: ranked with the deaths; otherwise missing, like a withdrawal)."""
    ranked = set(ranked_events(trial))
    tte = trial.lead_tte
    sentences = [f"{e.label} follows the trial file ({tte.label.lower()} "
                 + (f"counts it as an event): participants with {e.label.lower()} are ranked with the deaths, by its day"
                    if e.code in ranked else
                    f"does not count it as an event): participants with {e.label.lower()} are treated as missing, "
                    "like a withdrawal, and left out of the ranking") + "."
                 for e in trial.intercurrent_events]
    return " ".join(sentences) or "Withdrawal is treated as missing and left out of the ranking."


# ------------------------------------------------------------------ tables

def worst_rank_table(scores: pd.DataFrame, trial: Trial, header: dict[str, str]) -> pd.DataFrame:
    """Participants in the worst-rank analysis by category (labelled for the report) and arm."""
    last = trial.last_visit.label
    labels = {OBSERVED: f"Value observed at {last}", DEATH: f"Died before {last} (ranked worst)",
              **{code.lower(): f"{trial.event_label(code)} before {last} (ranked with deaths)"
                 for code in ranked_events(trial)},
              MISSING: "Missing for another reason (not ranked)"}
    counts = worst_rank_counts(scores, trial)
    counts["CATEGORY"] = counts["CATEGORY"].map(labels)
    return counts.rename(columns={"CATEGORY": "Participants"} | header)


def report_table(results: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Report layout of the sensitivity table: analysis, strategy, measure, estimate (95% CI), P, n."""
    def est(r):
        if pd.isna(r["estimate"]):
            return NOT_REACHED if r["measure"] != WIN_PROBABILITY else NOT_ESTIMABLE
        return estimate_text(r["estimate"], r["lower"], r["upper"], digits=digits)
    return pd.DataFrame({"Analysis": results["analysis"], "Strategy": results["strategy"],
                         "Measure": results["measure"], "Estimate (95% CI)": results.apply(est, axis=1),
                         "P": results["p_value"].map(format_p), "n": results["n"],
                         "Delta": results["delta"].map(lambda d: "" if pd.isna(d) else f"{d:.2f}")})


def tipping_report(grid_table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Report layout of the tipping-point grid: delta, estimate (95% CI), P, conclusion."""
    return pd.DataFrame({
        "Arm": grid_table["TRT01P"], "Delta": grid_table["delta"].map(lambda d: f"{d:g}"),
        "Estimate (95% CI)": [estimate_text(e, lo, hi, digits=digits)
                              for e, lo, hi in zip(grid_table["estimate"], grid_table["lower"], grid_table["upper"])],
        "P": grid_table["p_value"].map(format_p), "Conclusion": grid_table["conclusion"]})


def figure_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows the comparison figure plots: those with an estimate, difference measures first."""
    d = results.dropna(subset=["estimate"]).copy()
    d["panel"] = np.where(d["measure"] == WIN_PROBABILITY, 1, 0)
    return d.sort_values("panel", kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------ the chapter's tables

def show_worst_rank(a: dict, adsl: pd.DataFrame, trial: Trial) -> JournalTable:
    """Participants in the worst-rank analysis by arm (empty when the analyses are not estimable)."""
    return journal_table(
        worst_rank_table(a["scores"], trial, arm_header(adsl, trial)) if "scores" in a else pd.DataFrame(),
        "Participants in the worst-rank analysis by arm", "tab-worst-rank", empty=NOT_ESTIMABLE_ROW,
        notes="Deaths ranked by day from randomization; a participant who died after the visit keeps the observed value.")


def show_tipping_grid(a: dict, adsl: pd.DataFrame, trial: Trial, paramcd: str) -> JournalTable:
    """The delta-adjusted MI result by delta (empty when the analyses are not estimable)."""
    header = arm_header(adsl, trial)
    e = trial.endpoint(paramcd)
    table = tipping_report(a["grid"]).pipe(lambda t: t.assign(Arm=t["Arm"].map(header))) if "grid" in a else pd.DataFrame()
    return journal_table(
        table,
        f"Delta-adjusted multiple imputation: difference in {'log ' if e.log else ''}change at "
        f"{trial.last_visit.label} by delta", "tab-tipping",
        empty=NOT_ESTIMABLE_ROW,
        notes=f"Delta ({delta_scale(e)}) added to the imputed values of the experimental arm only; "
              f"{N_IMPUTATIONS} imputations, Rubin's rules. Conclusion at the two-sided 5% level.")


def show_comparison(results: pd.DataFrame, trial: Trial, paramcd: str) -> JournalTable:
    """The primary and sensitivity analyses side by side (the data of the figure)."""
    e = trial.endpoint(paramcd)
    columns = ["Analysis", "Strategy", "Comparison", "Measure", "Estimate (95% CI)", "P", "n", "Delta"]
    table = report_table(results).assign(Comparison=results["contrast"])[columns] if len(results) else pd.DataFrame()
    return journal_table(
        table,
        f"{e.label}: change from baseline to {trial.last_visit.label}, primary and sensitivity analyses "
        "(the data of the figure above)", "tab-sensitivity-comparison", empty=NOT_ESTIMABLE_ROW,
        notes=(f"Ratio of geometric means: experimental over control; {'below' if e.better == 'lower' else 'above'} 1 "
               if e.log else
               f"Difference: experimental minus control, in {e.unit}; {'below' if e.better == 'lower' else 'above'} 0 ")
              + "favours the experimental arm. Win probability: above 0.5 favours the experimental arm. Delta: shift "
              "added to the experimental arm's imputed values (tipping point: the delta at which the conclusion "
              "changes; 'not reached' within the grid of the delta-adjusted analysis).")
