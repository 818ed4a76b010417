"""Chapter 8 (design: operating characteristics by simulation) for the reader: the numbers its prose glues and its
tables, from ``analysis.design``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import design
from helpers.analysis.design import KEY, POWER_TARGET, PRIMARY
from helpers.report.findings import TEST_NAMES
from helpers.report.prose import change_text, early_ends_text, primary_what, whole_weeks, word_list
from helpers.report.tables import JournalTable, fixed, journal_table
from helpers.trial import SIMULATION_DEFAULTS, Trial, shown_unit

NOT_APPLICABLE = "–"


# ------------------------------------------------------------------ words and numbers

def pct(x: float, digits: int = 1) -> str:
    """A proportion as a percentage, '4.5%' (halves rounded up, as the tables print)."""
    return "not estimable" if pd.isna(x) else f"{fixed(100 * x, digits)}%"


def rate_text(row: pd.Series, digits: int = 1) -> str:
    """A Monte Carlo rate with its Wilson 95% interval: '4.5% (95% MC interval 2.9 to 6.9)'."""
    return (f"{pct(row['power'], digits)} (95% Monte Carlo interval {fixed(100 * row['power_lower'], digits)} to "
            f"{fixed(100 * row['power_upper'], digits)})")


def hr_text(hr: float) -> str:
    return f"{hr:g}"


def key_unit(trial: Trial, code: str | None = None) -> str:
    """The effect's unit of endpoint ``code`` (default: the key secondary) as the prose writes it: ' points', or ''
    for log-scale endpoints (log ratio)."""
    e = trial.endpoint(trial.key_secondary if code is None else code)
    return "" if e.log or not shown_unit(e.unit) else f" {shown_unit(e.unit)}"


def effect_text(x: float, trial: Trial, digits: int = 2, code: str | None = None) -> str:
    """An effect on endpoint ``code`` (default: the key secondary) on its analysis scale: '-0.93 points', or
    'ratio 0.90' for a log-scale endpoint."""
    if pd.isna(x):
        return NOT_APPLICABLE
    if trial.endpoint(trial.key_secondary if code is None else code).log:
        return f"ratio {np.exp(x):.{digits}f}"
    return f"{x:.{digits}f}{key_unit(trial, code)}"


def primary_effect_text(x: float, trial: Trial, digits: int = 2) -> str:
    """An effect on a continuous primary endpoint, on its analysis scale (``effect_text``)."""
    return effect_text(x, trial, digits, trial.primary_endpoint.code)


def n_text(n: float) -> str:
    return NOT_APPLICABLE if pd.isna(n) else f"{int(n)}"


def _rows(oc: pd.DataFrame, endpoint: str) -> pd.DataFrame:
    return oc[oc["endpoint"] == endpoint].sort_values("scenario")


def scenario_label(row: pd.Series) -> str:
    return "Null" if design.is_null_row(pd.DataFrame([row])).iloc[0] else f"Alternative {int(row['scenario'])}"


def _by_scenario(rows: pd.DataFrame, what, label) -> str:
    """'hazard ratio 0.75: 4.0%; 0.5: 5.5%; ...' over the non-null scenarios."""
    alt = rows[~design.is_null_row(rows)]
    return "; ".join(f"{label(r)}: {what(r)}" for _, r in alt.iterrows())


def _range(values, fmt) -> str:
    v = [x for x in values if pd.notna(x)]
    if not v:
        return "not estimable"
    lo, hi = min(v), max(v)
    return fmt(lo) if fixed(lo, 6) == fixed(hi, 6) else f"{fmt(lo)} to {fmt(hi)}"


def level_note(row: pd.Series, alpha: float, exact: bool = False) -> str:
    """How a simulated type-I error compares with the nominal level, judged by its Monte Carlo interval."""
    if row["power_upper"] < alpha:
        return f"below the nominal level of {alpha:g}" + (", as expected of an exact test on few events" if exact else "")
    if row["power_lower"] > alpha:
        return f"above the nominal level of {alpha:g}"
    return f"in line with the nominal level of {alpha:g}"


def seed_text(seed) -> str:
    """'seeded by 20250701', or that the trial file states no simulation seed (the figures then vary by build)."""
    if seed is None:
        return "unseeded (the trial file states no simulation seed, so the figures vary from build to build)"
    return f"seeded by {seed}"


def simulated_blocks_text(trial: Trial) -> str:
    """The block sizes the simulation uses: the trial file's, or the book's one default rule when it states none."""
    return ", ".join(map(str, trial.block_sizes)) + ("" if trial.randomization.stated_block_sizes else
                                                     " (the book's default of twice the ratio total: the trial file "
                                                     "states no block sizes)")


def key_derivation(e) -> str:
    """How the simulation gets the key secondary endpoint from its laboratory values, with no citation of any one
    score (the glossary defines each score with its reference)."""
    if e.source == "derived":
        return f", and the {e.label} is derived from them as the book's analysis datasets derive it"
    return f"; the {e.label} is one of them"


def assumptions_note(trial: Trial) -> str:
    """What the simulation assumes that the trial file does not state ("" when it states everything): the book's
    default rates and seed, and the generic parts of the disease model (``design.assumed_models``)."""
    missing = design.defaulted_assumptions(trial)
    models = design.assumed_models(trial)
    if not missing and not models:
        return ""
    text = ""
    if missing:
        used = "; ".join(f"{design.ASSUMPTION_NAMES[k]} {_assumption_text(k)}" for k in missing)
        names = [design.ASSUMPTION_NAMES[k] for k in missing]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        text = (f"The trial file states no simulation assumption for the {listed}, "
                f"so this chapter uses the book's defaults: {used}. ")
    if models:
        text += f"The trial file's simulation section does not state {'; nor '.join(models)}: the book assumed it. "
    return text + ("These are not this trial's own assumptions: "
                   "the power and sample sizes below illustrate the method and are not a design for this trial.")


def _assumption_text(key: str) -> str:
    value = SIMULATION_DEFAULTS[key]
    return str(value) if key == "seed" else pct(value, 0)


def primary_events_text(trial: Trial) -> str:
    """The events of a time-to-event primary endpoint, in prose: 'death', 'kidney failure and death'."""
    return word_list([trial.event_label(code).lower() for code in trial.lead_tte.events])


def _events_noun(trial: Trial) -> str:
    return "deaths" if all(trial.event_type(c).role == "death" for c in trial.lead_tte.events) else "events"


def _fallback_text(rows: pd.DataFrame) -> str:
    fallback = float(rows["fallback"].mean()) if len(rows) and "fallback" in rows else np.nan
    return ("the unstructured covariance converged in every replicate" if fallback == 0 else
            f"a simpler covariance structure was used in {pct(fallback)} of the replicates")


def _primary_numbers(oc: pd.DataFrame, t: Trial) -> dict[str, str]:
    """The primary endpoint's phrases, by its kind: time to event (hazard ratios, survival at the horizon) or
    continuous (the MMRM contrast of its change at the primary visit)."""
    prim, key = _rows(oc, PRIMARY), _rows(oc, KEY)
    null = design.null_scenario(oc).set_index("endpoint")
    mde = design.detectable_effect(oc, t)
    largest = key.loc[key["key_effect"].abs().idxmax()] if len(key) else None
    key_text = (f"an effect of {effect_text(largest['key_effect'], t)} on the {t.endpoint(t.key_secondary).label}, "
                f"{fixed(abs(largest['key_effect']) / design.key_change_sd(t), 1)} standard deviations of its change "
                f"under no effect ({effect_text(design.key_change_sd(t), t)})") if largest is not None else ""
    exp = t.experimental_arms[0].label
    alpha = f"{t.alpha:g}"
    if not design.is_continuous(t):
        strongest = prim.loc[prim["hazard_ratio"].idxmin()]
        none = "death" if _events_noun(t) == "deaths" else "event"
        hr_min = hr_text(strongest["hazard_ratio"]) + (f" (no {none} on the experimental arm)"
                                                       if strongest["hazard_ratio"] == 0 else "")
        deaths = f"{null.loc[PRIMARY, 'death_control'] * t.planned_n:.1f}" if PRIMARY in null.index else ""
        return {
            "hr_min": hr_min, "death_exp_min": pct(strongest["death_experimental"]), "deaths_null": deaths,
            "power_primary_max": pct(strongest["power"]),
            "primary_test": TEST_NAMES[t.primary_test],
            "primary_label": t.primary_endpoint.label,
            "scenario_text": (f"Scenario k multiplies the hazards of {primary_events_text(t)} on the experimental arm "
                              f"({exp}) by a hazard ratio and shifts the change in "
                              f"{t.endpoint(t.key_secondary).label} there by an effect, both growing together: from "
                              f"no effect to a hazard ratio of {hr_min} and {key_text}."
                              if key_text else
                              f"Scenario k multiplies the hazards of {primary_events_text(t)} on the experimental arm "
                              f"({exp}) by a hazard ratio: from no effect to a hazard ratio of {hr_min}."),
            "estimands_text": (f"the difference in event-free survival at day {t.horizon_days} with no "
                               f"{' and no '.join(e.label.lower() for e in t.intercurrent_events + [t.event_type('WITHDRAWAL')])}, "
                               "as the survival chapter defines it"),
            "primary_analysis_text": (f"{TEST_NAMES[t.primary_test]} at two-sided level {alpha}, and the Kaplan-Meier "
                                      f"difference in event-free survival at day {t.horizon_days} with its Greenwood "
                                      "standard error as the estimate"),
            "null_events_text": f", which had about {deaths} {_events_noun(t)} each" if deaths else "",
            "power_primary_text": _by_scenario(prim, lambda r: pct(r["power"]), _primary_scenario_label(t)),
            "power_primary_max_text": f"At a hazard ratio of {hr_min}, the power is {pct(strongest['power'])}.",
            "mde_primary": f"{fixed(100 * mde[PRIMARY], 1)} percentage points",
            "mde_primary_text": (f"The smallest difference in event-free survival this design detects with "
                                 f"{pct(POWER_TARGET, 0)} power is about {fixed(100 * mde[PRIMARY], 1)} percentage "
                                 "points (from the spread of the estimate under no effect), against a probability of "
                                 f"{primary_events_text(t)} of {pct(design.event_probability(t, 1.0), 0)} by day "
                                 f"{t.horizon_days} to be reduced."),
            "primary_se_name": "mean Greenwood standard error", "primary_interval": "95% Wald interval",
            "primary_truth_name": "true difference", "primary_fallback": "",
            "n80_primary_note": (f"sized for a Wald test of the survival difference, which {TEST_NAMES[t.primary_test]} "
                                 "approaches as events grow many"),
            "effects_assumed": (f"proportional hazards on {primary_events_text(t)} and a shift of the change in "
                                f"{t.endpoint(t.key_secondary).label} that grows linearly to {t.last_visit.label}"
                                if t.key_secondary is not None else
                                f"proportional hazards on {primary_events_text(t)}"),
        }
    pe = t.primary_endpoint
    what = change_text(pe.code, t.primary_visit.label, t)
    strongest = prim.loc[prim["primary_effect"].abs().idxmax()]
    sd1 = design.primary_change_sd(t)
    primary_max = primary_effect_text(strongest["primary_effect"], t)
    primary_part = (f"an effect of {primary_max} on the {what}, {fixed(abs(strongest['primary_effect']) / sd1, 1)} "
                    f"standard deviations of that change under no effect ({primary_effect_text(sd1, t)})")
    mde1 = mde[PRIMARY]
    mde1 = -abs(mde1) if t.endpoint(pe.code).better == "lower" else abs(mde1)
    return {
        "hr_min": NOT_APPLICABLE, "death_exp_min": NOT_APPLICABLE, "deaths_null": "",
        "power_primary_max": pct(strongest["power"]),
        "primary_test": f"the MMRM contrast at {t.primary_visit.label}",
        "primary_label": pe.label,
        "scenario_text": (f"Scenario k shifts the {what} on the experimental arm ({exp}) by an effect"
                          + (f", and the change in {t.endpoint(t.key_secondary).label} by another, both growing "
                             f"together: from no effect to {primary_part}, and {key_text}." if key_text else
                             f": from no effect to {primary_part}.")
                          + " The effects grow linearly to the last follow-up week; the hazards of "
                          f"{early_ends_text(t, 'and')} are those of no effect on both arms."),
        "estimands_text": f"the effect on the {what}",
        "primary_analysis_text": (f"the mixed model for repeated measures of the {what} (the MMRM contrast at "
                                  f"{t.primary_visit.label}, as the outcomes chapter fits it) at two-sided level "
                                  f"{alpha}, its estimate the contrast with its model standard error"),
        "null_events_text": "",
        "power_primary_text": _by_scenario(prim, lambda r: pct(r["power"]), _primary_scenario_label(t)),
        "power_primary_max_text": f"At an effect of {primary_max}, the power is {pct(strongest['power'])}.",
        "mde_primary": primary_effect_text(mde1, t),
        "mde_primary_text": (f"The smallest effect on the {what} this design detects with {pct(POWER_TARGET, 0)} "
                             f"power is about {primary_effect_text(mde1, t)} (from the spread of the estimate under "
                             "no effect)."),
        "primary_se_name": "mean model standard error",
        "primary_interval": "95% interval (Satterthwaite degrees of freedom)",
        "primary_truth_name": "true effect", "primary_fallback": f" In the primary MMRM, {_fallback_text(prim)}.",
        "n80_primary_note": "sized for a Wald test of the MMRM contrast, which its t test approaches as participants "
                            "grow many",
        "effects_assumed": (f"shifts of the change in {t.endpoint(pe.code).label}"
                            + (f" and in {t.endpoint(t.key_secondary).label}" if t.key_secondary is not None else "")
                            + f" that grow linearly to the last follow-up week ({t.last_visit.label}), with no effect "
                              "on the hazards of the events"),
    }


def chapter_numbers(oc: pd.DataFrame, trial: Trial, replicates: int, seed: int | None = None) -> dict[str, str | int]:
    """Every number and phrase the design chapter's prose glues, from ``operating_characteristics``; the primary
    endpoint's phrases by its kind (``_primary_numbers``)."""
    t = design.design_trial(trial)
    e = t.endpoint(t.key_secondary)
    prim, key = _rows(oc, PRIMARY), _rows(oc, KEY)
    null = design.null_scenario(oc).set_index("endpoint")
    mde = design.detectable_effect(oc, t)
    ratio = ":".join(str(a.ratio) for a in t.arm_order)
    blocks = simulated_blocks_text(t)
    largest = key.loc[key["key_effect"].abs().idxmax()]
    exp_label, ctl_label = t.experimental_arms[0].label, t.control.label

    def eff_label(r):
        return f"effect {effect_text(r['key_effect'], t)}"

    def rel_bias(rows):
        return _range(np.abs(rows["bias"] / rows["empirical_se"]), lambda x: pct(x, 0))

    sd = design.key_change_sd(t)
    seed = design.assumption(t, "seed") if seed is None else seed
    return {
        "n_planned": t.planned_n, "allocation": ratio, "block_sizes": blocks, "replicates": int(replicates),
        "design_seed": str(seed), "n_scenarios": int(oc["scenario"].nunique()), "seed_text": seed_text(seed),
        "key_derivation": key_derivation(e),
        "experimental": exp_label, "control": ctl_label,
        "primary_what": primary_what(t),
        "hazards_text": word_list(["death"] + [x.label.lower() for x in t.intercurrent_events]),
        "follow_up_ends": ", ".join(["death"] + [x.label.lower() for x in t.intercurrent_events] + ["withdrawal"]),
        "death_rate": pct(design.assumption(t, "death_rate_24w"), 0),
        "withdrawal_rate": pct(design.assumption(t, "withdrawal_rate"), 0),
        "missed_visit_rate": pct(design.assumption(t, "missed_visit_rate"), 0),
        "assumptions_note": assumptions_note(t),
        "cell_missing_rate": pct(design.CELL_MISSING_RATE),
        "horizon_days": t.horizon_days, "horizon_weeks": whole_weeks(t.horizon_days), "last_visit": t.last_visit.label,
        "alpha": f"{t.alpha:g}", "power_target": pct(POWER_TARGET, 0),
        "key_label": e.label, "key_scale": "log scale (ratio of geometric means)" if e.log else f"{e.unit} (difference)",
        "key_sd": effect_text(sd, t), "key_max_sd": f"{fixed(abs(largest['key_effect']) / sd, 1)} standard deviations",
        "type1_primary": rate_text(null.loc[PRIMARY]) if PRIMARY in null.index else "not simulated",
        "type1_key": rate_text(null.loc[KEY]) if KEY in null.index else "not simulated",
        "type1_primary_note": level_note(null.loc[PRIMARY], t.alpha,
                                         not design.is_continuous(t) and t.primary_test == "fisher")
        if PRIMARY in null.index else "",
        "type1_key_note": level_note(null.loc[KEY], t.alpha) if KEY in null.index else "",
        "type1_sequence": pct(null.loc[KEY, "claimed"]) if KEY in null.index else "not simulated",
        "power_key_text": _by_scenario(key, lambda r: pct(r["power"]), eff_label),
        "power_key_max": pct(largest["power"]), "effect_key_max": effect_text(largest["key_effect"], t),
        "claimed_text": _by_scenario(key, lambda r: pct(r["claimed"]), eff_label),
        "claimed_max": pct(key["claimed"].max()),
        "mde_key": effect_text(-abs(mde[KEY]) if e.better == "lower" else abs(mde[KEY]), t),
        "coverage_primary": _range(prim["coverage"], pct), "coverage_key": _range(key["coverage"], pct),
        "bias_primary": rel_bias(prim), "bias_key": rel_bias(key),
        "se_ratio_primary": _range(prim["mean_se"] / prim["empirical_se"], lambda x: f"{x:.2f}"),
        "se_ratio_key": _range(key["mean_se"] / key["empirical_se"], lambda x: f"{x:.2f}"),
        "n80_primary_text": _by_scenario(prim, lambda r: n_text(r["n_for_power"]), _primary_scenario_label(t)),
        "n80_key_text": _by_scenario(key, lambda r: n_text(r["n_for_power"]), eff_label),
        "fallback_key": _fallback_text(key),
    } | _primary_numbers(oc, t)


def _primary_scenario_label(t: Trial):
    """How a scenario is named by its effect on the primary endpoint: 'hazard ratio 0.75', 'effect 1.40 mL/min'."""
    if design.is_continuous(t):
        return lambda r: f"effect {primary_effect_text(r['primary_effect'], t)}"
    return lambda r: f"hazard ratio {hr_text(r['hazard_ratio'])}"


# ------------------------------------------------------------------ tables

def scenario_table(oc: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """One row per scenario: the hazard ratio and the probabilities of the primary endpoint's events by the horizon it
    implies (as randomized) and the true survival difference, or a continuous primary endpoint's effect; the key
    secondary effect; as simulated and as randomized."""
    t = design.design_trial(trial)
    exp, ctl = t.experimental_arms[0].label, t.control.label
    p = _rows(oc, PRIMARY).set_index("scenario")
    k = _rows(oc, KEY).set_index("scenario")
    rows = []
    for s, r in (p if len(p) else k).iterrows():
        label = scenario_label(pd.Series({**r, "scenario": s}))
        if design.is_continuous(t):
            primary = t.endpoint(t.primary_endpoint.code).label
            rows.append({"Scenario": label, f"Effect on {primary}": primary_effect_text(r["primary_effect"], t),
                         f"{primary}: true effect as randomized":
                             primary_effect_text(p.loc[s, "truth"], t) if s in p.index else "",
                         f"Effect on {t.endpoint(t.key_secondary).label}": effect_text(r["key_effect"], t),
                         f"{t.endpoint(t.key_secondary).label}: true effect as randomized":
                             effect_text(k.loc[s, "truth"], t) if s in k.index else ""})
            continue
        rows.append({"Scenario": label,
                     "Hazard ratio": hr_text(r["hazard_ratio"]),
                     f"Death by day {t.horizon_days}, {ctl} (%)": fixed(100 * r["death_control"], 1),
                     f"Death by day {t.horizon_days}, {exp} (%)": fixed(100 * r["death_experimental"], 1),
                     "True survival difference (percentage points)": fixed(100 * p.loc[s, "truth"], 1) if s in p.index else "",
                     f"Effect on {t.endpoint(t.key_secondary).label}": effect_text(r["key_effect"], t),
                     "True effect as randomized": effect_text(k.loc[s, "truth"], t) if s in k.index else ""})
    return pd.DataFrame(rows)


def _ci(r: pd.Series) -> str:
    return f"{fixed(100 * r['power'], 1)} ({fixed(100 * r['power_lower'], 1)} to {fixed(100 * r['power_upper'], 1)})"


def primary_table(oc: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """The primary endpoint's operating characteristics per scenario: time to event in percentage points of the
    survival difference, a continuous primary endpoint on its analysis scale."""
    rows = []
    if design.is_continuous(trial):
        for _, r in _rows(oc, PRIMARY).iterrows():
            rows.append({"Scenario": scenario_label(r), "Effect": primary_effect_text(r["primary_effect"], trial),
                         "Significant, % (95% MC interval)": _ci(r), "True effect": f"{r['truth']:.2f}",
                         "Bias": f"{r['bias']:.2f}", "Mean SE": f"{r['mean_se']:.2f}",
                         "Empirical SE": f"{r['empirical_se']:.2f}", "Coverage (%)": fixed(100 * r["coverage"], 1),
                         f"N for {pct(POWER_TARGET, 0)} power": n_text(r["n_for_power"])})
        return pd.DataFrame(rows)
    for _, r in _rows(oc, PRIMARY).iterrows():
        rows.append({"Scenario": scenario_label(r), "Hazard ratio": hr_text(r["hazard_ratio"]),
                     "Significant, % (95% MC interval)": _ci(r),
                     "True difference": fixed(100 * r["truth"], 1), "Bias": fixed(100 * r["bias"], 1),
                     "Mean SE": fixed(100 * r["mean_se"], 1), "Empirical SE": fixed(100 * r["empirical_se"], 1),
                     "Coverage (%)": fixed(100 * r["coverage"], 1), f"N for {pct(POWER_TARGET, 0)} power": n_text(r["n_for_power"])})
    return pd.DataFrame(rows)


def key_table(oc: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """The key secondary endpoint's operating characteristics per scenario (analysis scale)."""
    rows = []
    for _, r in _rows(oc, KEY).iterrows():
        rows.append({"Scenario": scenario_label(r), "Effect": effect_text(r["key_effect"], trial),
                     "Significant, % (95% MC interval)": _ci(r),
                     "Claimed in the fixed sequence (%)": fixed(100 * r["claimed"], 1),
                     "True effect": f"{r['truth']:.2f}", "Bias": f"{r['bias']:.2f}", "Mean SE": f"{r['mean_se']:.2f}",
                     "Empirical SE": f"{r['empirical_se']:.2f}", "Coverage (%)": fixed(100 * r["coverage"], 1),
                     f"N for {pct(POWER_TARGET, 0)} power": n_text(r["n_for_power"])})
    return pd.DataFrame(rows)


def operating_table(oc: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Both endpoints in one plain table (the command line's): power, coverage, claims and N for 80% power."""
    p, k = _rows(oc, PRIMARY).set_index("scenario"), _rows(oc, KEY).set_index("scenario")
    rows = []
    for s in sorted(set(p.index) | set(k.index)):
        r = p.loc[s] if s in p.index else k.loc[s]
        row = {"scenario": scenario_label(pd.Series({**r, "scenario": s}))}
        if design.is_continuous(trial):
            row |= {"primary effect": f"{r['primary_effect']:g}"}
        else:
            row |= {"HR": hr_text(r["hazard_ratio"]), "death ctl/exp %":
                    f"{fixed(100 * r['death_control'], 1)}/{fixed(100 * r['death_experimental'], 1)}"}
        if s in p.index and design.is_continuous(trial):
            q = p.loc[s]
            row |= {"primary sig %": fixed(100 * q["power"], 1), "primary bias": f"{q['bias']:.3f}",
                    "primary SE": f"{q['empirical_se']:.3f}", "primary cover %": fixed(100 * q["coverage"], 1),
                    "primary N80": n_text(q["n_for_power"])}
        elif s in p.index:
            q = p.loc[s]
            row |= {"primary sig %": fixed(100 * q["power"], 1), "primary bias pp": fixed(100 * q["bias"], 1),
                    "primary SE pp": fixed(100 * q["empirical_se"], 1), "primary cover %": fixed(100 * q["coverage"], 1),
                    "primary N80": n_text(q["n_for_power"])}
        if s in k.index:
            q = k.loc[s]
            row |= {"key effect": f"{q['key_effect']:g}", "key sig %": fixed(100 * q["power"], 1),
                    "key claimed %": fixed(100 * q["claimed"], 1), "key bias": f"{q['bias']:.3f}",
                    "key SE": f"{q['empirical_se']:.3f}", "key cover %": fixed(100 * q["coverage"], 1),
                    "key N80": n_text(q["n_for_power"])}
        rows.append(row | {"replicates": int(r["replicates"])})
    return pd.DataFrame(rows)


def show_scenarios(oc: pd.DataFrame, trial: Trial) -> JournalTable:
    """The scenarios simulated and their true values."""
    t = design.design_trial(trial)
    key = ("Effect on the key secondary endpoint: on its change from baseline to "
           f"{t.last_visit.label}, for the arm received; as randomized, diluted by the occasional participant who "
           "receives the other arm.")
    if design.is_continuous(t):
        notes = (f"Effect on the primary endpoint: on its change from baseline to {t.primary_visit.label}, for the arm "
                 "received, on its analysis scale; as randomized, diluted by the occasional participant who receives "
                 "the other arm. " + key)
    else:
        notes = (f"Hazard ratio of {primary_events_text(t)}, {t.experimental_arms[0].label} vs {t.control.label}, for "
                 f"the arm received. Death by the horizon: with no "
                 f"{' and no '.join(e.label.lower() for e in t.intercurrent_events + [t.event_type('WITHDRAWAL')])} "
                 "(the hypothetical strategy of the survival chapter), as randomized. " + key)
    return journal_table(scenario_table(oc, t), "Scenarios simulated: the true effects and what they imply",
                         "tab-design-scenarios", notes=notes)


def show_primary(oc: pd.DataFrame, trial: Trial) -> JournalTable:
    """The primary endpoint's operating characteristics."""
    t = design.design_trial(trial)
    if design.is_continuous(t):
        return journal_table(
            primary_table(oc, t), f"Primary endpoint: {primary_what(t)} (MMRM)", "tab-design-primary",
            notes=(f"Significant: MMRM contrast at {t.primary_visit.label} with P < {t.alpha:g} (two-sided), the "
                   "primary endpoint met; under the null, the type-I error. MC interval: Wilson 95% interval of the "
                   "Monte Carlo rate. Estimates on the analysis scale "
                   f"({'log' if t.endpoint(t.primary_endpoint.code).log else t.endpoint(t.primary_endpoint.code).unit}); "
                   "bias against the true effect as randomized; coverage of the 95% interval (Satterthwaite degrees "
                   f"of freedom). N for {pct(POWER_TARGET, 0)} power: from the empirical SE scaled by 1/sqrt(N), in "
                   "whole blocks."))
    return journal_table(
        primary_table(oc, t), f"Primary endpoint: {TEST_NAMES[t.primary_test]}, and the difference in survival at day "
                           f"{t.horizon_days}", "tab-design-primary",
        notes=(f"Significant: P < {t.alpha:g} (two-sided), the primary endpoint met; under the null, the type-I error. "
               "MC interval: Wilson 95% interval of the Monte Carlo rate. Estimate: Kaplan-Meier survival at the horizon, "
               "experimental minus control, in percentage points; bias against the true difference; mean SE: mean "
               "Greenwood standard error; empirical SE: standard deviation of the estimates; coverage: the 95% Wald "
               f"interval holding the truth. N for {pct(POWER_TARGET, 0)} power: from the empirical SE scaled by "
               "1/sqrt(N) (Wald test of the difference), in whole blocks."))


def show_key(oc: pd.DataFrame, trial: Trial) -> JournalTable:
    """The key secondary endpoint's operating characteristics."""
    t = design.design_trial(trial)
    e = t.endpoint(t.key_secondary)
    return journal_table(
        key_table(oc, t), f"Key secondary endpoint: change in {e.label} to {t.last_visit.label} (MMRM)", "tab-design-key",
        notes=(f"Significant: MMRM contrast at {t.last_visit.label} with P < {t.alpha:g} (two-sided), whatever the primary "
               "result; claimed: significant and the primary endpoint met (fixed sequence). Estimates on the analysis "
               f"scale ({'log' if e.log else e.unit}); bias against the true effect as randomized; coverage of the 95% "
               f"interval (Satterthwaite degrees of freedom). N for {pct(POWER_TARGET, 0)} power: from the empirical SE "
               "scaled by 1/sqrt(N), in whole blocks; for the key secondary alone, not through the fixed sequence."))
