"""Chapter 8 (design: operating characteristics by simulation) for the reader: the numbers its prose glues and its
tables, from ``analysis.design``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import design
from helpers.analysis.design import KEY, POWER_TARGET, PRIMARY
from helpers.report.findings import TEST_NAMES, primary_test_text
from helpers.report.prose import primary_what, whole_weeks
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


def key_unit(trial: Trial) -> str:
    """The key secondary effect's unit as the prose writes it: ' points', or '' for log-scale endpoints (log ratio)."""
    e = trial.endpoint(trial.key_secondary)
    return "" if e.log or not shown_unit(e.unit) else f" {shown_unit(e.unit)}"


def effect_text(x: float, trial: Trial, digits: int = 2) -> str:
    """A key secondary effect on its analysis scale: '-0.93 points', or 'ratio 0.90' for a log-scale endpoint."""
    if pd.isna(x):
        return NOT_APPLICABLE
    if trial.endpoint(trial.key_secondary).log:
        return f"ratio {np.exp(x):.{digits}f}"
    return f"{x:.{digits}f}{key_unit(trial)}"


def n_text(n: float) -> str:
    return NOT_APPLICABLE if pd.isna(n) else f"{int(n)}"


def _rows(oc: pd.DataFrame, endpoint: str) -> pd.DataFrame:
    return oc[oc["endpoint"] == endpoint].sort_values("scenario")


def scenario_label(row: pd.Series) -> str:
    return "Null" if row["hazard_ratio"] == 1.0 and row["key_effect"] == 0.0 else f"Alternative {int(row['scenario'])}"


def _by_scenario(rows: pd.DataFrame, what, label) -> str:
    """'hazard ratio 0.75: 4.0%; 0.5: 5.5%; ...' over the non-null scenarios."""
    alt = rows[~((rows["hazard_ratio"] == 1.0) & (rows["key_effect"] == 0.0))]
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


def scope_note(trial: Trial) -> str:
    """For a continuous primary endpoint: that the simulation stands in a time-to-event endpoint for it ("" else)."""
    if design.simulates_trial_primary(trial):
        return ""
    t = design.design_trial(trial)
    return (f"This trial's primary endpoint is continuous ({primary_what(trial)}, tested by "
            f"{primary_test_text(trial)}), but this chapter's simulation models a time-to-event primary endpoint only: "
            f"below, the primary endpoint is {t.primary_endpoint.label.lower()}, tested by {TEST_NAMES[t.primary_test]}, "
            "and the key secondary endpoint follows it in the fixed sequence. The power of the trial's own primary "
            "analysis is not simulated here.")


def chapter_numbers(oc: pd.DataFrame, trial: Trial, replicates: int, seed: int | None = None) -> dict[str, str | int]:
    """Every number and phrase the design chapter's prose glues, from ``operating_characteristics``."""
    t = design.design_trial(trial)
    e = t.endpoint(t.key_secondary)
    prim, key = _rows(oc, PRIMARY), _rows(oc, KEY)
    null = design.null_scenario(oc).set_index("endpoint")
    mde = design.detectable_effect(oc, t)
    ratio = ":".join(str(a.ratio) for a in t.arm_order)
    blocks = simulated_blocks_text(t)
    strongest = prim.loc[prim["hazard_ratio"].idxmin()]
    largest = key.loc[key["key_effect"].abs().idxmax()]
    exp_label, ctl_label = t.experimental_arms[0].label, t.control.label

    def hr_label(r):
        return f"hazard ratio {hr_text(r['hazard_ratio'])}"

    def eff_label(r):
        return f"effect {effect_text(r['key_effect'], t)}"

    def rel_bias(rows):
        return _range(np.abs(rows["bias"] / rows["empirical_se"]), lambda x: pct(x, 0))

    fallback = float(key["fallback"].mean()) if len(key) else np.nan
    sd = design.key_change_sd(t)
    return {
        "n_planned": t.planned_n, "allocation": ratio, "block_sizes": blocks, "replicates": int(replicates),
        "design_seed": str(design.assumption(t, "seed") if seed is None else seed), "n_scenarios": int(oc["scenario"].nunique()),
        "seed_text": seed_text(design.assumption(t, "seed") if seed is None else seed),
        "key_derivation": key_derivation(e),
        "experimental": exp_label, "control": ctl_label,
        "death_rate": pct(design.assumption(t, "death_rate_24w"), 0),
        "withdrawal_rate": pct(design.assumption(t, "withdrawal_rate"), 0),
        "missed_visit_rate": pct(design.assumption(t, "missed_visit_rate"), 0), "assumptions_note": " ".join(filter(None, (scope_note(trial), assumptions_note(t)))),
        "cell_missing_rate": pct(design.CELL_MISSING_RATE),
        "horizon_days": t.horizon_days, "horizon_weeks": whole_weeks(t.horizon_days), "last_visit": t.last_visit.label,
        "primary_test": TEST_NAMES[t.primary_test], "alpha": f"{t.alpha:g}", "power_target": pct(POWER_TARGET, 0),
        "key_label": e.label, "key_scale": "log scale (ratio of geometric means)" if e.log else f"{e.unit} (difference)",
        "key_sd": effect_text(sd, t), "key_max_sd": f"{fixed(abs(largest['key_effect']) / sd, 1)} standard deviations",
        "deaths_null": f"{null.loc[PRIMARY, 'death_control'] * t.planned_n:.1f}" if PRIMARY in null.index else "",
        "type1_primary": rate_text(null.loc[PRIMARY]) if PRIMARY in null.index else "not simulated",
        "type1_key": rate_text(null.loc[KEY]) if KEY in null.index else "not simulated",
        "type1_primary_note": level_note(null.loc[PRIMARY], t.alpha, t.primary_test == "fisher")
        if PRIMARY in null.index else "",
        "type1_key_note": level_note(null.loc[KEY], t.alpha) if KEY in null.index else "",
        "type1_sequence": pct(null.loc[KEY, "claimed"]) if KEY in null.index else "not simulated",
        "power_primary_text": _by_scenario(prim, lambda r: pct(r["power"]), hr_label),
        "power_primary_max": pct(strongest["power"]),
        "hr_min": hr_text(strongest["hazard_ratio"]) + (" (no death on the experimental arm)"
                                                        if strongest["hazard_ratio"] == 0 else ""),
        "death_exp_min": pct(strongest["death_experimental"]),
        "power_key_text": _by_scenario(key, lambda r: pct(r["power"]), eff_label),
        "power_key_max": pct(largest["power"]), "effect_key_max": effect_text(largest["key_effect"], t),
        "claimed_text": _by_scenario(key, lambda r: pct(r["claimed"]), eff_label),
        "claimed_max": pct(key["claimed"].max()),
        "mde_primary": f"{fixed(100 * mde[PRIMARY], 1)} percentage points",
        "mde_key": effect_text(-abs(mde[KEY]) if e.better == "lower" else abs(mde[KEY]), t),
        "coverage_primary": _range(prim["coverage"], pct), "coverage_key": _range(key["coverage"], pct),
        "bias_primary": rel_bias(prim), "bias_key": rel_bias(key),
        "se_ratio_primary": _range(prim["mean_se"] / prim["empirical_se"], lambda x: f"{x:.2f}"),
        "se_ratio_key": _range(key["mean_se"] / key["empirical_se"], lambda x: f"{x:.2f}"),
        "n80_primary_text": _by_scenario(prim, lambda r: n_text(r["n_for_power"]), hr_label),
        "n80_key_text": _by_scenario(key, lambda r: n_text(r["n_for_power"]), eff_label),
        "fallback_key": ("the unstructured covariance converged in every replicate" if fallback == 0 else
                         f"a simpler covariance structure was used in {pct(fallback)} of the replicates"),
    }


# ------------------------------------------------------------------ tables

def scenario_table(oc: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """One row per scenario: the hazard ratio and the 24-week death probabilities it implies (as randomized), the
    true survival difference and the key secondary effect, as simulated and as randomized."""
    t = design.design_trial(trial)
    exp, ctl = t.experimental_arms[0].label, t.control.label
    p = _rows(oc, PRIMARY).set_index("scenario")
    k = _rows(oc, KEY).set_index("scenario")
    rows = []
    for s, r in (p if len(p) else k).iterrows():
        rows.append({"Scenario": scenario_label(pd.Series({**r, "scenario": s})),
                     "Hazard ratio": hr_text(r["hazard_ratio"]),
                     f"Death by day {t.horizon_days}, {ctl} (%)": fixed(100 * r["death_control"], 1),
                     f"Death by day {t.horizon_days}, {exp} (%)": fixed(100 * r["death_experimental"], 1),
                     "True survival difference (percentage points)": fixed(100 * p.loc[s, "truth"], 1) if s in p.index else "",
                     f"Effect on {t.endpoint(t.key_secondary).label}": effect_text(r["key_effect"], t),
                     "True effect as randomized": effect_text(k.loc[s, "truth"], t) if s in k.index else ""})
    return pd.DataFrame(rows)


def _ci(r: pd.Series) -> str:
    return f"{fixed(100 * r['power'], 1)} ({fixed(100 * r['power_lower'], 1)} to {fixed(100 * r['power_upper'], 1)})"


def primary_table(oc: pd.DataFrame) -> pd.DataFrame:
    """The primary endpoint's operating characteristics per scenario (percentage points for the estimate)."""
    rows = []
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
        row = {"scenario": scenario_label(pd.Series({**r, "scenario": s})), "HR": hr_text(r["hazard_ratio"]),
               "death ctl/exp %": f"{fixed(100 * r['death_control'], 1)}/{fixed(100 * r['death_experimental'], 1)}"}
        if s in p.index:
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
    return journal_table(
        scenario_table(oc, t), "Scenarios simulated: the true effects and what they imply", "tab-design-scenarios",
        notes=(f"Hazard ratio of death, {t.experimental_arms[0].label} vs {t.control.label}, for the "
               f"arm received. Death by the horizon: with no {' and no '.join(e.label.lower() for e in t.intercurrent_events + [t.event_type('WITHDRAWAL')])} (the hypothetical strategy of "
               "the survival chapter), as randomized. Effect on the key secondary endpoint: on its change from baseline "
               f"to {t.last_visit.label}, for the arm received; as randomized, diluted by the occasional participant who "
               "receives the other arm."))


def show_primary(oc: pd.DataFrame, trial: Trial) -> JournalTable:
    """The primary endpoint's operating characteristics."""
    t = design.design_trial(trial)
    return journal_table(
        primary_table(oc), f"Primary endpoint: {TEST_NAMES[t.primary_test]}, and the difference in survival at day "
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
