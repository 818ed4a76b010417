"""Missing data and estimands for one endpoint's change at the last visit: the data the analyses share,
the primary MMRM (hypothetical strategy, missing at random), and the tidy table comparing it with
multiple imputation under MAR (``imputation``), the worst-rank composite for deaths (``worst_rank``)
and the delta-adjusted tipping point (``tipping``).

Every comparison is a non-control arm against the trial's control arm, on the analysis scale of
``outcomes.analysis_data`` (log change for log endpoints). "Worse" follows the endpoint's
``better`` direction in the trial file.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import cohort, outcomes
from helpers.analysis.imputation import (
    MI_SEED,
    N_IMPUTATIONS,
    impute_changes,
    mi_ancova,
    observed_visits,
)
from helpers.analysis.mmrm import STRUCTURE_NAMES
from helpers.analysis.tipping import tipping_grid, tipping_point
from helpers.analysis.worst_rank import ranked_events, worst_rank, worst_rank_scores
from helpers.trial import Trial

RESULT_COLUMNS = ["analysis", "strategy", "estimand", "contrast", "measure", "estimate", "lower", "upper",
                  "p_value", "n", "delta", "note"]
PRIMARY = "MMRM (primary)"
MULTIPLE_IMPUTATION = "Multiple imputation"
WORST_RANK = "Worst rank"
TIPPING_POINT = "Tipping point (delta-adjusted MI)"
DIFFERENCE = "difference in mean change"
RATIO = "ratio of geometric means"
WIN_PROBABILITY = "win probability"


# ------------------------------------------------------------------ data

def change_wide(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str) -> pd.DataFrame:
    """One row per randomized (ITT) participant with a baseline value: USUBJID, TRT01P (control
    first), BASE, randomization strata, and the change at each follow-up visit (columns named by
    visit label; missing where not observed), on the analysis scale of ``outcomes.analysis_data``."""
    e = trial.endpoint(paramcd)
    itt = adsl[adsl["ITTFL"].eq("Y")] if "ITTFL" in adsl else adsl
    base = adlb[(adlb["PARAMCD"] == paramcd) & (adlb["AVISITN"] == 0)].dropna(subset=["AVAL"])
    base = base.drop_duplicates("USUBJID").set_index("USUBJID")["AVAL"]
    post = outcomes.analysis_data(adlb, trial, paramcd, adsl if trial.strata else None)
    wide = post.pivot(index="USUBJID", columns="AVISIT", values="CHG")
    strata = trial.strata
    out = itt[["USUBJID", "TRT01P"] + strata].copy()
    out = out[out["USUBJID"].isin(base.index)]
    out["BASE"] = np.log(out["USUBJID"].map(base)) if e.log else out["USUBJID"].map(base)
    for v in trial.followup_visits:
        out[v.label] = out["USUBJID"].map(wide[v.label]) if v.label in wide else np.nan
    out["TRT01P"] = pd.Categorical(out["TRT01P"], categories=[a.label for a in trial.arm_order])
    out = out[~out["USUBJID"].isin(not_yet_due_at_last_visit(adsl, adlb, trial))]
    return out.sort_values("USUBJID").reset_index(drop=True)


def not_yet_due_at_last_visit(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> set[str]:
    """Participants whose last visit was not yet due at an interim data cut-off: their value there is
    not missing but not yet observable, so they are left out of the analyses of that visit."""
    if "DCUTDT" not in adsl or adsl["DCUTDT"].isna().all():
        return set()
    status = cohort.visit_status(adsl, adlb, trial)
    return set(status.loc[(status["Visit"] == trial.last_visit.label) & status["not_yet_due"], "USUBJID"])


def not_estimable_reason(wide: pd.DataFrame, trial: Trial) -> str | None:
    """Why the analyses of the last visit cannot be run, or None. The imputation regressions use the
    baseline and every other visit with data (``observed_visits``), so each arm needs more observed values
    at the last visit and at each of those visits than that model has parameters (visits + 1), with two
    to spare."""
    visits = list(dict.fromkeys(observed_visits(wide, trial) + [trial.last_visit.label]))
    need = len(visits) + 3
    for arm in trial.arm_order:
        d = wide[wide["TRT01P"] == arm.label]
        for v in visits:
            n = int(d[v].notna().sum())
            if n < need:
                return (f"not estimable: {n} participant(s) of the {arm.label} arm observed at {v.lower()}"
                        f"{' by the data cut-off' if trial.is_interim else ''}; the analyses need at least {need}")
    return None


# ------------------------------------------------------------------ primary and results

def primary_mmrm(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str, level: float = 0.95) -> pd.DataFrame:
    """The primary MMRM (outcomes.fit_endpoint_mmrm) at the last visit, with n = participants in the model, on the
    model's scale (log change for log endpoints, like the other analyses; ``sensitivity_results`` back-transforms)."""
    res = outcomes.fit_endpoint_mmrm(adlb, trial, paramcd, adsl)
    diff = outcomes.mmrm_differences(res, trial, paramcd, level, back_transform=False)
    diff = diff[diff["AVISIT"] == trial.last_visit.label].copy()
    diff["n"] = outcomes.analysis_data(adlb, trial, paramcd, adsl)["USUBJID"].nunique()
    return diff.reset_index(drop=True)


def _estimand(trial: Trial, paramcd: str) -> str:
    e = trial.endpoint(paramcd)
    scale = "log change" if e.log else "change"
    return f"{scale} in {e.label} from baseline to {trial.last_visit.label}"


def sensitivity_results(primary: pd.DataFrame, mi: pd.DataFrame, wr: pd.DataFrame, tipping: dict[str, dict] | None,
                        trial: Trial, paramcd: str, m: int) -> pd.DataFrame:
    """The tidy sensitivity table (one row per analysis and non-control arm): analysis, strategy,
    estimand, contrast, measure, estimate, lower, upper, p_value, n, delta, note."""
    e = trial.endpoint(paramcd)
    control = trial.control.label
    var = _estimand(trial, paramcd)
    ranked = ranked_events(trial)
    ice = "".join(f"{e.term} {'composite (ranked with deaths)' if e.code in ranked else 'missing (excluded)'}; "
                  for e in trial.intercurrent_events)
    delta_unit = "on the natural-log scale" if e.log else e.unit
    rows = []
    for arm in (a.label for a in trial.experimental_arms):
        contrast = f"{arm} - {control}"
        p = primary[primary["TRT01P"] == arm].iloc[0]
        rows.append({"analysis": PRIMARY, "strategy": "hypothetical (MAR)", "estimand": var, "contrast": contrast,
                     "measure": DIFFERENCE, "estimate": p["estimate"], "lower": p["lower"], "upper": p["upper"],
                     "p_value": p["p_value"], "n": int(p["n"]), "delta": 0.0,
                     "note": f"REML, {STRUCTURE_NAMES.get(p['covariance'], p['covariance'])} covariance, "
                             f"Satterthwaite df {p['df']:.1f}"})
        r = mi[(mi["TRT01P"] == arm) & (mi["delta"] == 0)].iloc[0]
        rows.append({"analysis": MULTIPLE_IMPUTATION, "strategy": "hypothetical (MAR)", "estimand": var,
                     "contrast": contrast, "measure": DIFFERENCE, "estimate": r["estimate"], "lower": r["lower"],
                     "upper": r["upper"], "p_value": r["p_value"], "n": int(r["n"]), "delta": 0.0,
                     "note": f"M = {m} imputations by arm, Bayesian regression on baseline and other visits; ANCOVA; "
                             f"Rubin's rules, Barnard-Rubin df {r['df']:.1f}"})
        w = wr[wr["TRT01P"] == arm].iloc[0]
        rows.append({"analysis": WORST_RANK, "strategy": "composite (death worst)", "estimand": f"{var}, death ranked worst",
                     "contrast": f"{arm} vs {control}", "measure": WIN_PROBABILITY, "estimate": w["estimate"],
                     "lower": w["lower"], "upper": w["upper"], "p_value": w["p_value"],
                     "n": int(w["n_experimental"] + w["n_control"]), "delta": np.nan,
                     "note": f"Wilcoxon-Mann-Whitney; Brunner-Munzel CI; {ice}other missing excluded"})
        if tipping and arm in tipping:
            t = tipping[arm]
            reached = np.isfinite(t["delta"])
            rows.append({"analysis": TIPPING_POINT, "strategy": "hypothetical (MNAR, delta)",
                         "estimand": var, "contrast": contrast, "measure": DIFFERENCE,
                         "estimate": t.get("estimate", np.nan), "lower": t.get("lower", np.nan),
                         "upper": t.get("upper", np.nan), "p_value": t.get("p_value", np.nan), "n": int(r["n"]),
                         "delta": t["delta"],
                         "note": (f"conclusion changes from '{t['from_conclusion']}' to '{t['to_conclusion']}' when imputed "
                                  f"{arm} values are {t['delta']:.2f} {delta_unit} worse" if reached else
                                  f"conclusion '{t['from_conclusion']}' unchanged up to delta {t['grid_max']:g} "
                                  f"{delta_unit}")})
    out = pd.DataFrame(rows)[RESULT_COLUMNS]
    if e.log:
        diff = out["measure"] == DIFFERENCE
        out.loc[diff, ["estimate", "lower", "upper"]] = np.exp(out.loc[diff, ["estimate", "lower", "upper"]])
        out.loc[diff, "measure"] = RATIO
    return out


def sensitivity_analyses(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str, m: int = N_IMPUTATIONS,
                         seed: int = MI_SEED, grid=None) -> dict:
    """Every analysis of the chapter for one endpoint at the last visit, at the trial's two-sided alpha
    (conclusions) and 1 - alpha confidence level (intervals): the wide data, the imputations,
    the primary MMRM, MI, the tipping-point grid and tipping point per arm, the worst-rank scores and
    comparison, and the tidy ``results`` table. When too few participants were observed
    (``not_estimable_reason``), only ``wide``, the worst-rank ``scores`` and ``not_estimable`` are returned,
    with an empty ``results``."""
    wide = change_wide(adlb, adsl, trial, paramcd)
    reason = not_estimable_reason(wide, trial)
    if reason:
        return {"wide": wide, "scores": worst_rank_scores(wide, adsl, trial, paramcd), "not_estimable": reason,
                "results": pd.DataFrame(columns=RESULT_COLUMNS)}
    alpha = trial.alpha
    completed = impute_changes(wide, trial, m, seed)
    mi = mi_ancova(completed, trial, level=1 - alpha)
    grid_table = tipping_grid(completed, trial, paramcd, grid)
    tipping = {arm: tipping_point(grid_table, completed, trial, paramcd, arm) for arm in mi["TRT01P"]}
    scores = worst_rank_scores(wide, adsl, trial, paramcd)
    wr = worst_rank(scores, trial, 1 - alpha)
    primary = primary_mmrm(adlb, adsl, trial, paramcd, 1 - alpha)
    return {"wide": wide, "completed": completed, "primary": primary, "mi": mi, "grid": grid_table,
            "tipping": tipping, "scores": scores, "worst_rank": wr,
            "results": sensitivity_results(primary, mi, wr, tipping, trial, paramcd, m)}

