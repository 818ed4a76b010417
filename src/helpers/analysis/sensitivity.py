"""Missing data and estimands for one endpoint's change at the last visit: the primary MMRM
(hypothetical strategy, missing at random) against multiple imputation under MAR, a worst-rank
composite for deaths, and a delta-adjusted tipping point.

Every comparison is a non-control arm against the trial's control arm, on the analysis scale of
``outcomes.analysis_data`` (log change for log endpoints). "Worse" follows the endpoint's
``better`` direction in the trial file.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import optimize, stats

from helpers.analysis import cohort, outcomes

from helpers.report import plots
from helpers.report.tables import format_p
from helpers.trial import Trial

MI_SEED = 20250724
N_IMPUTATIONS = 50
N_BURN_IN = 20
RESULT_COLUMNS = ["analysis", "strategy", "estimand", "contrast", "measure", "estimate", "lower", "upper",
                  "p_value", "n", "delta", "note"]
DIFFERENCE = "difference in mean change"
WIN_PROBABILITY = "win probability"
TIPPING = "tipping point delta"


# ------------------------------------------------------------------ data

def _arm_order(trial: Trial) -> list[str]:
    control = trial.arm_labels[trial.control_arm]
    return [control] + [a.label for a in trial.arms if a.code != trial.control_arm]


def _worse_sign(trial: Trial, paramcd: str) -> int:
    """+1 when a larger change is worse for the patient, -1 when a larger change is better."""
    return 1 if trial.endpoint(paramcd).better == "lower" else -1


def change_wide(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str) -> pd.DataFrame:
    """One row per randomized (ITT) participant with a baseline value: USUBJID, TRT01P (control
    first), BASE, randomization strata, and the change at each follow-up visit (columns named by
    visit label; missing where not observed), on the analysis scale of ``outcomes.analysis_data``."""
    e = trial.endpoint(paramcd)
    itt = adsl[adsl["ITTFL"].eq("Y")] if "ITTFL" in adsl else adsl
    base = adlb[(adlb["PARAMCD"] == paramcd) & (adlb["AVISITN"] == 0)].dropna(subset=["AVAL"])
    base = base.drop_duplicates("USUBJID").set_index("USUBJID")["AVAL"]
    post = outcomes.analysis_data(adlb, trial, paramcd, adsl if trial.randomization.get("strata") else None)
    wide = post.pivot(index="USUBJID", columns="AVISIT", values="CHG")
    strata = list(trial.randomization.get("strata") or [])
    out = itt[["USUBJID", "TRT01P"] + strata].copy()
    out = out[out["USUBJID"].isin(base.index)]
    out["BASE"] = np.log(out["USUBJID"].map(base)) if e.log else out["USUBJID"].map(base)
    for v in trial.followup_visits:
        out[v.label] = out["USUBJID"].map(wide[v.label]) if v.label in wide else np.nan
    out["TRT01P"] = pd.Categorical(out["TRT01P"], categories=_arm_order(trial))
    out = out[~out["USUBJID"].isin(not_yet_due_at_last_visit(adsl, adlb, trial))]
    return out.sort_values("USUBJID").reset_index(drop=True)


def not_yet_due_at_last_visit(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> set[str]:
    """Participants whose last visit was not yet due at an interim data cut-off: their value there is
    not missing but not yet observable, so they are left out of the analyses of that visit."""
    if "DCUTDT" not in adsl or adsl["DCUTDT"].isna().all():
        return set()
    status = cohort.visit_status(adsl, adlb, trial)
    return set(status.loc[(status["Visit"] == trial.visits[-1].label) & status["not_yet_due"], "USUBJID"])


def not_estimable_reason(wide: pd.DataFrame, trial: Trial) -> str | None:
    """Why the analyses of the last visit cannot be run, or None. The imputation regressions use the
    baseline and every other visit, so each arm needs more observed values at each follow-up visit
    than that model has parameters (number of follow-up visits + 1), with two to spare."""
    need = len(trial.followup_visits) + 3
    for arm in _arm_order(trial):
        d = wide[wide["TRT01P"] == arm]
        for v in trial.followup_visits:
            n = int(d[v.label].notna().sum())
            if n < need:
                return (f"not estimable: {n} participant(s) of the {arm.lower()} arm observed at {v.label.lower()}"
                        f"{' by the data cut-off' if trial.is_interim else ''}; the analyses need at least {need}")
    return None


# ------------------------------------------------------------------ multiple imputation

def bayesian_regression_draw(x: np.ndarray, y: np.ndarray, x_new: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Impute y at the rows x_new from the normal linear model fitted to (x, y), drawing the
    parameters from their posterior first (Rubin 1987, p. 167; van Buuren 2018, Algorithm 3.1;
    SAS PROC MI, REG method): sigma*^2 = RSS / chi2(n - p), beta* ~ N(beta_hat, sigma*^2 (X'X)^-1),
    y* = x_new beta* + N(0, sigma*^2). ``x`` and ``x_new`` include the intercept column."""
    n, p = x.shape
    if n - p < 1:
        raise ValueError(f"imputation model with {p} parameters needs more than {n} observed values")
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    rss = float(np.sum((y - x @ beta) ** 2))
    sigma = np.sqrt(rss / rng.chisquare(n - p))
    beta_star = beta + sigma * np.linalg.cholesky(xtx_inv) @ rng.standard_normal(p)
    return x_new @ beta_star + sigma * rng.standard_normal(len(x_new))


def is_monotone(observed: np.ndarray) -> bool:
    """True when every row's observed visits are a prefix (observed up to a visit, missing after)."""
    obs = np.asarray(observed, dtype=bool)
    return bool(np.all(obs[:, 1:] <= obs[:, :-1])) if obs.shape[1] > 1 else True


def _predictors(t: int, n_visits: int, earlier_only: bool) -> list[int]:
    """Visits used to impute visit t: the earlier ones (monotone), or all others (chained), nearest first."""
    others = range(t) if earlier_only else (j for j in range(n_visits) if j != t)
    return sorted(others, key=lambda j: (abs(j - t), j))


def _impute_visit(y: np.ndarray, base: np.ndarray, observed: np.ndarray, t: int, earlier_only: bool,
                  rng: np.random.Generator) -> None:
    """Redraw the missing values of visit t in place from a regression on baseline and other visits;
    the farthest visits are dropped when the observed rows cannot support them (at least 2 residual df)."""
    miss = ~observed[:, t]
    if not miss.any():
        return
    obs = observed[:, t]
    cols = _predictors(t, y.shape[1], earlier_only)
    while cols and obs.sum() - (2 + len(cols)) < 2:
        cols = cols[:-1]
    x = np.column_stack([np.ones(len(y)), base] + [y[:, j] for j in cols])
    y[miss, t] = bayesian_regression_draw(x[obs], y[obs, t], x[miss], rng)


def _impute_arm(y: np.ndarray, base: np.ndarray, rng: np.random.Generator, n_burn_in: int) -> np.ndarray:
    """One completed copy of one arm's visits: a monotone regression pass (SAS PROC MI MONOTONE REG),
    then, when the missingness is not monotone, chained (FCS) iterations on baseline and all other visits."""
    observed = ~np.isnan(y)
    y = y.copy()
    for t in range(y.shape[1]):
        _impute_visit(y, base, observed, t, earlier_only=True, rng=rng)
    if not is_monotone(observed):
        for _ in range(n_burn_in):
            for t in range(y.shape[1]):
                _impute_visit(y, base, observed, t, earlier_only=False, rng=rng)
    return y


def impute_changes(wide: pd.DataFrame, trial: Trial, m: int = N_IMPUTATIONS, seed: int = MI_SEED,
                   n_burn_in: int = N_BURN_IN) -> pd.DataFrame:
    """m completed copies of ``change_wide`` under MAR, imputing by arm (regression on baseline and the
    other visits, parameters drawn from their posterior). Long format: IMP (1..m), USUBJID, TRT01P, BASE,
    strata, AVISIT, CHG, IMPUTED (True where the value was missing)."""
    visits = [v.label for v in trial.followup_visits]
    rng = np.random.default_rng(seed)
    keep = [c for c in wide.columns if c not in visits]
    copies = []
    for i in range(1, m + 1):
        done = wide.copy()
        for arm in wide["TRT01P"].cat.categories:
            rows = (wide["TRT01P"] == arm).to_numpy()
            if rows.any():
                y = wide.loc[rows, visits].to_numpy(dtype=float)
                done.loc[rows, visits] = _impute_arm(y, wide.loc[rows, "BASE"].to_numpy(dtype=float), rng, n_burn_in)
        long = done.melt(id_vars=keep, value_vars=visits, var_name="AVISIT", value_name="CHG")
        long["IMPUTED"] = wide.melt(id_vars=keep, value_vars=visits)["value"].isna().to_numpy()
        copies.append(long.assign(IMP=i))
    out = pd.concat(copies, ignore_index=True)
    return out[["IMP"] + keep + ["AVISIT", "CHG", "IMPUTED"]]


# ------------------------------------------------------------------ analysis and pooling

def ancova_fit(d: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """ANCOVA of one complete data set at one visit, CHG ~ arm + BASE (+ strata), OLS: per non-control
    arm, estimate, its variance and the residual df (the complete-data df of Rubin's rules)."""
    fit = smf.ols(outcomes.ancova_formula(trial), data=d).fit()
    rows = []
    for arm in _arm_order(trial)[1:]:
        term = f"C(TRT01P)[T.{arm}]"
        rows.append({"TRT01P": arm, "estimate": fit.params[term], "variance": fit.bse[term] ** 2,
                     "df_complete": fit.df_resid, "n": int(fit.nobs)})
    return pd.DataFrame(rows)


def rubin(estimates, variances, df_complete: float, level: float = 0.95) -> dict:
    """Rubin's rules (Rubin 1987, ch. 3): pooled estimate, total variance T = W + (1 + 1/m) B, and the
    Barnard and Rubin (1999) small-sample degrees of freedom; t-based CI and two-sided p-value for 0."""
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = len(q)
    if m < 2:
        raise ValueError("Rubin's rules need at least two imputations")
    qbar, w, b = q.mean(), u.mean(), q.var(ddof=1)
    total = w + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / total
    df_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
    df = df_obs if lam == 0 else 1 / (lam ** 2 / (m - 1) + 1 / df_obs)
    se = np.sqrt(total)
    half = stats.t.ppf(0.5 + level / 2, df) * se
    return {"estimate": qbar, "se": se, "df": df, "lower": qbar - half, "upper": qbar + half,
            "p_value": 2 * stats.t.sf(abs(qbar) / se, df), "within": w, "between": b, "total": total,
            "fmi_lambda": lam, "m": m}


def mi_ancova(completed: pd.DataFrame, trial: Trial, visit: str | None = None, delta: float = 0.0,
              worse_sign: int = 1, level: float = 0.95) -> pd.DataFrame:
    """ANCOVA at ``visit`` (default: the last) in every imputed data set, pooled by Rubin's rules, per
    non-control arm. ``delta`` (analysis-scale units, in the worse direction ``worse_sign``) is added
    to the imputed values of the non-control arms only: the delta-adjusted (MNAR) sensitivity analysis."""
    visit = visit or trial.visits[-1].label
    d = completed[completed["AVISIT"] == visit].copy()
    shift = d["IMPUTED"] & (d["TRT01P"] != _arm_order(trial)[0])
    d.loc[shift, "CHG"] += worse_sign * delta
    fits = pd.concat([ancova_fit(g, trial).assign(IMP=i) for i, g in d.groupby("IMP", sort=True)], ignore_index=True)
    rows = []
    for arm, f in fits.groupby("TRT01P", sort=False):
        pooled = rubin(f["estimate"], f["variance"], f["df_complete"].iloc[0], level)
        rows.append({"TRT01P": arm, "n": int(f["n"].iloc[0]),
                     "n_imputed": int(d.loc[(d["IMP"] == d["IMP"].min()) & (d["TRT01P"] == arm), "IMPUTED"].sum()),
                     "delta": delta} | pooled)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ tipping point

def conclusion(estimate: float, p_value: float, worse_sign: int, alpha: float = 0.05) -> str:
    """'favours experimental', 'favours control' or 'no significant difference' at level alpha."""
    if not p_value < alpha:
        return "no significant difference"
    return "favours control" if np.sign(estimate) == worse_sign else "favours experimental"


def default_delta_grid(completed: pd.DataFrame, trial: Trial, visit: str | None = None, points: int = 20) -> np.ndarray:
    """0 to about 4 SD of the observed change at the visit, in a round step (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5 x 10^k)."""
    visit = visit or trial.visits[-1].label
    d = completed[(completed["AVISIT"] == visit) & ~completed["IMPUTED"] & (completed["IMP"] == completed["IMP"].min())]
    span = 4 * float(d["CHG"].std())
    if not np.isfinite(span) or span <= 0:
        span = 1.0
    raw = span / points
    k = 10.0 ** np.floor(np.log10(raw))
    step = next(s * k for s in (1, 2, 2.5, 5, 10) if s * k >= raw)
    return np.round(np.arange(points + 1) * step, 10)


def tipping_grid(completed: pd.DataFrame, trial: Trial, paramcd: str, grid=None, visit: str | None = None,
                 alpha: float = 0.05) -> pd.DataFrame:
    """The delta-adjusted MI result over a grid of deltas (worse direction, non-control arms' imputed
    values only), with the conclusion at each."""
    sign = _worse_sign(trial, paramcd)
    grid = default_delta_grid(completed, trial, visit) if grid is None else np.asarray(grid, dtype=float)
    out = pd.concat([mi_ancova(completed, trial, visit, delta, sign, 1 - alpha) for delta in grid], ignore_index=True)
    out["conclusion"] = [conclusion(e, p, sign, alpha) for e, p in zip(out["estimate"], out["p_value"])]
    return out


def tipping_point(grid_table: pd.DataFrame, completed: pd.DataFrame, trial: Trial, paramcd: str, arm: str,
                  visit: str | None = None, alpha: float = 0.05) -> dict:
    """The smallest delta at which the conclusion for ``arm`` differs from that at delta = 0: located
    in the grid, then refined by root finding on p(delta) = alpha (Brent's method). Keys: delta
    (nan if not reached in the grid), from_conclusion, to_conclusion, grid_max, and the result at delta."""
    sign = _worse_sign(trial, paramcd)
    g = grid_table[grid_table["TRT01P"] == arm].sort_values("delta").reset_index(drop=True)
    start = g["conclusion"].iloc[0]
    changed = g.index[g["conclusion"] != start]
    info = {"from_conclusion": start, "grid_max": float(g["delta"].max()), "to_conclusion": "", "delta": np.nan}
    if not len(changed):
        return info
    k = changed[0]

    def p_minus_alpha(delta: float) -> float:
        return mi_ancova(completed, trial, visit, delta, sign, 1 - alpha).set_index("TRT01P").loc[arm, "p_value"] - alpha

    lo, hi = g.loc[k - 1, "delta"], g.loc[k, "delta"]
    delta = optimize.brentq(p_minus_alpha, lo, hi, xtol=1e-6) if np.sign(p_minus_alpha(lo)) != np.sign(p_minus_alpha(hi)) else hi
    at = mi_ancova(completed, trial, visit, delta, sign, 1 - alpha).set_index("TRT01P").loc[arm]
    return info | {"delta": float(delta), "to_conclusion": g.loc[k, "conclusion"]} | at[["estimate", "lower", "upper", "p_value"]].to_dict()


# ------------------------------------------------------------------ worst-rank composite

def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days + 1


def worst_rank_scores(wide: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str,
                      visit: str | None = None) -> pd.DataFrame:
    """Per participant of ``change_wide``: the category (observed, death, transplant, missing) and a
    score where larger is worse. Observed changes at the visit keep their order (sign-adjusted so larger
    is worse); a participant without a value at the visit who died by the end of its window (or was
    transplanted, when the trial file's primary_endpoint.transplant is not 'censor') scores worse than any
    observed change, earlier events (days from randomization) worse; the others are missing (score nan)."""
    visit = trial.visits[-1] if visit is None else next(v for v in trial.visits if v.label == visit)
    sign = _worse_sign(trial, paramcd)
    sl = adsl.set_index("USUBJID").loc[wide["USUBJID"]]
    window_end = sl["TRTSDT"].fillna(sl["RANDDT"]) + pd.Timedelta(days=visit.window[1] - 1)
    value = wide[visit.label].to_numpy(dtype=float)
    observed = ~np.isnan(value)
    died = (sl["DTHFL"].eq("Y") & (sl["DTHDT"] <= window_end)).to_numpy() & ~observed
    tx_as_event = trial.primary_endpoint.get("transplant", "censor") != "censor"
    transplanted = (sl["LTXFL"].eq("Y") & (sl["LTXDT"] <= window_end)).to_numpy() & ~observed & ~died & tx_as_event
    day = np.where(died, _days(sl["DTHDT"], sl["RANDDT"]), np.where(transplanted, _days(sl["LTXDT"], sl["RANDDT"]), np.nan))
    event = died | transplanted
    score = np.where(observed, sign * value, np.nan)
    if event.any():
        top = np.nanmax(score) + 1 if observed.any() else 0.0
        score = np.where(event, top + (np.nanmax(day) - day), score)
    category = np.select([observed, died, transplanted], ["observed", "death", "transplant"], "missing")
    return pd.DataFrame({"USUBJID": wide["USUBJID"].to_numpy(), "TRT01P": wide["TRT01P"].to_numpy(),
                         "CHG": value, "CATEGORY": category, "EVENT_DAY": day, "SCORE": score})


def win_probability(experimental, control, level: float = 0.95) -> dict:
    """P(experimental better than control) + P(tie)/2 from worse-is-larger scores, with the
    Brunner and Munzel (2000) variance and t-approximation (Satterthwaite df) CI, and the
    Wilcoxon-Mann-Whitney test (scipy, two-sided, asymptotic with tie correction)."""
    x = np.asarray(experimental, dtype=float)
    y = np.asarray(control, dtype=float)
    nx, ny = len(x), len(y)
    pooled = stats.rankdata(np.concatenate([x, y]))
    rx, ry = pooled[:nx], pooled[nx:]
    p_hat = (ry.mean() - (ny + 1) / 2) / nx
    sx = np.sum((rx - stats.rankdata(x) - rx.mean() + (nx + 1) / 2) ** 2) / (nx - 1)
    sy = np.sum((ry - stats.rankdata(y) - ry.mean() + (ny + 1) / 2) ** 2) / (ny - 1)
    v = nx * sx + ny * sy
    se = np.sqrt(v) / (nx * ny)
    df = v ** 2 / ((nx * sx) ** 2 / (nx - 1) + (ny * sy) ** 2 / (ny - 1)) if v > 0 else np.nan
    half = stats.t.ppf(0.5 + level / 2, df) * se if v > 0 else np.nan
    mw = stats.mannwhitneyu(y, x, alternative="two-sided", method="asymptotic")
    return {"estimate": p_hat, "se": se, "df": df, "lower": max(0.0, p_hat - half), "upper": min(1.0, p_hat + half),
            "U": float(mw.statistic), "p_value": float(mw.pvalue), "n_experimental": nx, "n_control": ny}


def worst_rank(scores: pd.DataFrame, trial: Trial, level: float = 0.95) -> pd.DataFrame:
    """Worst-rank comparison of each non-control arm with control (participants with a missing
    score excluded): win probability with CI and the Wilcoxon-Mann-Whitney p-value."""
    s = scores.dropna(subset=["SCORE"])
    control = _arm_order(trial)[0]
    rows = []
    for arm in _arm_order(trial)[1:]:
        res = win_probability(s.loc[s["TRT01P"] == arm, "SCORE"], s.loc[s["TRT01P"] == control, "SCORE"], level)
        rows.append({"TRT01P": arm, "contrast": f"{arm} vs {control}"} | res)
    return pd.DataFrame(rows)


def worst_rank_counts(scores: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Participants per arm by worst-rank category (observed, death, transplant, missing)."""
    cats = ["observed", "death", "transplant", "missing"]
    t = pd.crosstab(scores["CATEGORY"], scores["TRT01P"]).reindex(index=cats, columns=_arm_order(trial), fill_value=0)
    t.index.name, t.columns.name = "CATEGORY", None
    return t.reset_index()


# ------------------------------------------------------------------ primary and results

def primary_mmrm(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str, level: float = 0.95) -> pd.DataFrame:
    """The primary MMRM (outcomes.fit_endpoint_mmrm) at the last visit, with n = participants in the model."""
    res = outcomes.fit_endpoint_mmrm(adlb, trial, paramcd, adsl)
    diff = outcomes.mmrm_differences(res, trial, paramcd, level)
    diff = diff[diff["AVISIT"] == trial.visits[-1].label].copy()
    diff["n"] = outcomes.analysis_data(adlb, trial, paramcd, adsl)["USUBJID"].nunique()
    return diff.reset_index(drop=True)


def _estimand(trial: Trial, paramcd: str) -> str:
    e = trial.endpoint(paramcd)
    scale = "log change" if e.log else "change"
    return f"{scale} in {e.label} from baseline to {trial.visits[-1].label}"


def sensitivity_results(primary: pd.DataFrame, mi: pd.DataFrame, wr: pd.DataFrame, tipping: dict[str, dict] | None,
                        trial: Trial, paramcd: str, m: int) -> pd.DataFrame:
    """The tidy sensitivity table (one row per analysis and non-control arm): analysis, strategy,
    estimand, contrast, measure, estimate, lower, upper, p_value, n, delta, note."""
    e = trial.endpoint(paramcd)
    control = _arm_order(trial)[0]
    var = _estimand(trial, paramcd)
    tx = "composite (ranked with deaths)" if trial.primary_endpoint.get("transplant", "censor") != "censor" else "missing (excluded)"
    rows = []
    for arm in _arm_order(trial)[1:]:
        contrast = f"{arm} - {control}"
        p = primary[primary["TRT01P"] == arm].iloc[0]
        rows.append({"analysis": "MMRM (primary)", "strategy": "hypothetical (MAR)", "estimand": var, "contrast": contrast,
                     "measure": DIFFERENCE, "estimate": p["estimate"], "lower": p["lower"], "upper": p["upper"],
                     "p_value": p["p_value"], "n": int(p["n"]), "delta": 0.0,
                     "note": f"REML, {outcomes.COVARIANCE_NAMES.get(p['covariance'], p['covariance'])} covariance, "
                             f"Satterthwaite df {p['df']:.1f}"})
        r = mi[(mi["TRT01P"] == arm) & (mi["delta"] == 0)].iloc[0]
        rows.append({"analysis": "Multiple imputation", "strategy": "hypothetical (MAR)", "estimand": var, "contrast": contrast,
                     "measure": DIFFERENCE, "estimate": r["estimate"], "lower": r["lower"], "upper": r["upper"],
                     "p_value": r["p_value"], "n": int(r["n"]), "delta": 0.0,
                     "note": f"M = {m} imputations by arm, Bayesian regression on baseline and other visits; ANCOVA; "
                             f"Rubin's rules, Barnard-Rubin df {r['df']:.1f}"})
        w = wr[wr["TRT01P"] == arm].iloc[0]
        rows.append({"analysis": "Worst rank", "strategy": "composite (death worst)", "estimand": f"{var}, death ranked worst",
                     "contrast": f"{arm} vs {control}", "measure": WIN_PROBABILITY, "estimate": w["estimate"],
                     "lower": w["lower"], "upper": w["upper"], "p_value": w["p_value"],
                     "n": int(w["n_experimental"] + w["n_control"]), "delta": np.nan,
                     "note": f"Wilcoxon-Mann-Whitney; Brunner-Munzel CI; transplant {tx}; other missing excluded"})
        if tipping and arm in tipping:
            t = tipping[arm]
            reached = np.isfinite(t["delta"])
            rows.append({"analysis": "Tipping point (delta-adjusted MI)", "strategy": "hypothetical (MNAR, delta)",
                         "estimand": var, "contrast": contrast, "measure": DIFFERENCE,
                         "estimate": t.get("estimate", np.nan), "lower": t.get("lower", np.nan),
                         "upper": t.get("upper", np.nan), "p_value": t.get("p_value", np.nan), "n": int(r["n"]),
                         "delta": t["delta"],
                         "note": (f"conclusion changes from '{t['from_conclusion']}' to '{t['to_conclusion']}' when imputed "
                                  f"{arm} values are {t['delta']:.2f} {e.unit} worse" if reached else
                                  f"conclusion '{t['from_conclusion']}' unchanged up to delta {t['grid_max']:g} {e.unit}")})
    out = pd.DataFrame(rows)[RESULT_COLUMNS]
    if e.log:
        diff = out["measure"] == DIFFERENCE
        out.loc[diff, ["estimate", "lower", "upper"]] = np.exp(out.loc[diff, ["estimate", "lower", "upper"]])
        out.loc[diff, "measure"] = "ratio of geometric means"
    return out


def sensitivity_analyses(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str, m: int = N_IMPUTATIONS,
                         seed: int = MI_SEED, grid=None, alpha: float = 0.05) -> dict:
    """Every analysis of the chapter for one endpoint at the last visit: the wide data, the imputations,
    the primary MMRM, MI, the tipping-point grid and tipping point per arm, the worst-rank scores and
    comparison, and the tidy ``results`` table. When too few participants were observed
    (``not_estimable_reason``), only ``wide`` and ``not_estimable`` are returned, with an empty ``results``."""
    wide = change_wide(adlb, adsl, trial, paramcd)
    reason = not_estimable_reason(wide, trial)
    if reason:
        return {"wide": wide, "not_estimable": reason, "results": pd.DataFrame(columns=RESULT_COLUMNS)}
    completed = impute_changes(wide, trial, m, seed)
    mi = mi_ancova(completed, trial, level=1 - alpha)
    grid_table = tipping_grid(completed, trial, paramcd, grid, alpha=alpha)
    tipping = {arm: tipping_point(grid_table, completed, trial, paramcd, arm, alpha=alpha) for arm in mi["TRT01P"]}
    scores = worst_rank_scores(wide, adsl, trial, paramcd)
    wr = worst_rank(scores, trial, 1 - alpha)
    primary = primary_mmrm(adlb, adsl, trial, paramcd, 1 - alpha)
    return {"wide": wide, "completed": completed, "primary": primary, "mi": mi, "grid": grid_table,
            "tipping": tipping, "scores": scores, "worst_rank": wr,
            "results": sensitivity_results(primary, mi, wr, tipping, trial, paramcd, m)}


def chapter_numbers(a: dict, adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial, paramcd: str) -> dict[str, str | int]:
    """Every number and phrase the sensitivity chapter's prose glues, from ``sensitivity_analyses``.
    When the analyses are not estimable, each result phrase says why."""
    e = trial.endpoint(paramcd)
    last = trial.visits[-1].label
    events = intercurrent_table(adsl, adlb, trial)
    at_last = events[events["Visit"] == last]
    transplant_event = trial.primary_endpoint.get("transplant", "censor") != "censor"
    control, *experimental = _arm_order(trial)
    out = {
        "endpoint": e.label, "unit": e.unit, "better": e.better, "last_visit": last.lower(),
        "experimental": " and ".join(x.lower() for x in experimental), "control": control.lower(),
        "followup": ", ".join(v.label.lower() for v in trial.followup_visits), "n_itt": len(a["wide"]),
        "n_missing_last": int(a["wide"][last].isna().sum()), "n_death_last": int(at_last["Death"].sum()),
        "n_tx_last": int(at_last["Liver transplant"].sum()), "n_wd_last": int(at_last["Withdrawal"].sum()),
        "n_missed_last": int(at_last["Missed"].sum()), "n_not_due_last": int(at_last["Not yet due"].sum()),
        "transplant_rule": trial.primary_endpoint.get("transplant", "censor"),
        "transplant_handling": ("ranked with the deaths, by day of transplantation" if transplant_event else
                                "treated as missing, like a withdrawal, and left out of the ranking"),
        "mmrm_formula": outcomes.mmrm_formula(trial), "m": N_IMPUTATIONS, "mi_seed": MI_SEED, "burn_in": N_BURN_IN,
    }
    if "not_estimable" in a:
        why = a["not_estimable"]
        return out | {k: why for k in ("primary_text", "mi_text", "wr_text", "tipping_text", "agreement")} | {
            "n_mmrm": 0, "mi_df": "", "mi_fmi": "", "wr_n": 0, "wr_excluded": 0, "grid_text": why}
    row = {r["analysis"]: r for _, r in a["results"].iterrows()}
    mi = a["mi"].iloc[0]
    return out | {
        "n_mmrm": int(row["MMRM (primary)"]["n"]), "primary_text": row_text(row["MMRM (primary)"], e.unit),
        "mi_text": row_text(row["Multiple imputation"], e.unit), "mi_df": f"{mi['df']:.1f}",
        "mi_fmi": f"{mi['fmi_lambda']:.2f}", "wr_text": row_text(row["Worst rank"]), "wr_n": int(row["Worst rank"]["n"]),
        "wr_excluded": int((a["scores"]["CATEGORY"] == "missing").sum()),
        "tipping_text": " ".join(tipping_sentence(a["tipping"][arm], trial, paramcd, arm) for arm in experimental),
        "grid_text": f"0 to {a['grid']['delta'].max():g} {e.unit} in steps of {a['grid']['delta'].diff().max():g}",
        "agreement": agreement_sentence(a["results"], trial, paramcd),
    }


# ------------------------------------------------------------------ report

def intercurrent_table(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Intercurrent events and missed visits by arm and visit (survival.intercurrent_events)."""
    from helpers.analysis.survival import intercurrent_events
    return intercurrent_events(adsl, adlb, trial)


def worst_rank_table(scores: pd.DataFrame, trial: Trial, header: dict[str, str]) -> pd.DataFrame:
    """Participants in the worst-rank analysis by category (labelled for the report) and arm."""
    last = trial.visits[-1].label
    labels = {"observed": f"Value observed at {last}", "death": f"Died before {last} (ranked worst)",
              "transplant": f"Transplanted before {last} (ranked with deaths)",
              "missing": "Missing for another reason (not ranked)"}
    counts = worst_rank_counts(scores, trial)
    counts["CATEGORY"] = counts["CATEGORY"].map(labels)
    return counts.rename(columns={"CATEGORY": "Participants"} | header)


def report_table(results: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Report layout of the sensitivity table: analysis, strategy, measure, estimate (95% CI), P, n."""
    def est(r):
        if pd.isna(r["estimate"]):
            return "not reached" if r["measure"] != WIN_PROBABILITY else "not estimable"
        ci = "" if pd.isna(r["lower"]) else f" ({r['lower']:.{digits}f} to {r['upper']:.{digits}f})"
        return f"{r['estimate']:.{digits}f}{ci}"
    return pd.DataFrame({"Analysis": results["analysis"], "Strategy": results["strategy"],
                         "Measure": results["measure"], "Estimate (95% CI)": results.apply(est, axis=1),
                         "P": results["p_value"].map(format_p), "n": results["n"],
                         "Delta": results["delta"].map(lambda d: "" if pd.isna(d) else f"{d:.2f}")})


def figure_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows the comparison figure plots: those with an estimate, difference measures first."""
    d = results.dropna(subset=["estimate"]).copy()
    d["panel"] = np.where(d["measure"] == WIN_PROBABILITY, 1, 0)
    return d.sort_values("panel", kind="stable").reset_index(drop=True)


def _row_label(r, e, several: bool) -> str:
    label = r.analysis if pd.isna(r.delta) or r.delta == 0 else \
        f"{r.analysis}\n(delta = {r.delta:.2f}{'' if e.unit in ('', '1') else ' ' + e.unit})"
    return f"{label}\n{r.contrast}" if several else label


def plot_sensitivity(results: pd.DataFrame, trial: Trial, paramcd: str):
    """Forest-style comparison of the analyses: upper panel, differences in change (endpoint unit, reference 0;
    ratios with reference 1 for log endpoints); lower panel, the worst-rank win probability (reference 0.5).
    Estimate and 95% CI printed beside each row."""
    plots.set_style()
    e = trial.endpoint(paramcd)
    d = figure_rows(results)
    if d.empty:
        return plots.placeholder_figure(f"{e.label} at {trial.visits[-1].label}: not estimable")
    panels = [p for p in (0, 1) if (d["panel"] == p).any()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 0.55 * len(d) + 0.9 * len(panels) + 0.4), squeeze=False,
                             gridspec_kw={"height_ratios": [max(1, (d["panel"] == p).sum()) for p in panels]})
    unit = "" if e.unit in ("", "1") else f" ({e.unit})"
    titles = {0: (f"Ratio of geometric means, {e.label}" if e.log else f"Difference in change in {e.label}{unit}"),
              1: "Win probability: P(" + ("experimental arm" if len(trial.arms) > 2 else _arm_order(trial)[1])
                 + f" better than {_arm_order(trial)[0]})\n(composite: death ranked worst)"}
    refs = {0: 1.0 if e.log else 0.0, 1: 0.5}
    for ax, p in zip(axes[:, 0], panels):
        rows = d[d["panel"] == p]
        y = np.arange(len(rows))[::-1]
        ax.hlines(y, rows["lower"], rows["upper"], color="#333333", linewidth=1.4)
        ax.plot(rows["estimate"].to_numpy(), y, "s", color="#1b6ca8", markersize=6, linestyle="none")
        ax.axvline(refs[p], color="#888888", linewidth=0.8, linestyle="--")
        if p == 0 and e.log:
            ax.set_xscale("log")
        labels = [_row_label(r, e, several=len(trial.arms) > 2) for r in rows.itertuples()]
        ax.set_yticks(y, labels)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.margins(x=0.08)
        ax.set_xlabel(titles[p], fontsize="small")
        for yy, r in zip(y, rows.itertuples()):
            ax.text(1.02, yy, f"{r.estimate:.2f} ({r.lower:.2f} to {r.upper:.2f})", transform=ax.get_yaxis_transform(),
                    va="center", fontsize="x-small")
        ax.tick_params(axis="both", labelsize="x-small")
    control = _arm_order(trial)[0]
    fig.suptitle(f"{', '.join(_arm_order(trial)[1:])} vs {control}, {trial.visits[-1].label} (95% CI)", fontsize="medium")
    fig.tight_layout()
    plt.close(fig)
    return fig


# ------------------------------------------------------------------ prose

def row_text(row: pd.Series, unit: str = "", digits: int = 2) -> str:
    """One result row as prose: 'difference -1.15 points (95% CI -2.79 to 0.48; P = 0.154)' or
    'win probability 0.63 (95% CI 0.42 to 0.85; P = 0.215)'."""
    if pd.isna(row["estimate"]):
        return "not estimable"
    kind = {WIN_PROBABILITY: "win probability", DIFFERENCE: "difference"}.get(row["measure"], row["measure"])
    u = f" {unit}" if unit not in ("", "1") and row["measure"] == DIFFERENCE else ""
    p = format_p(row["p_value"])
    return (f"{kind} {row['estimate']:.{digits}f}{u} (95% CI {row['lower']:.{digits}f} to {row['upper']:.{digits}f}; "
            f"P {'< ' + p[1:] if p.startswith('<') else '= ' + p})")


def analysis_conclusion(row: pd.Series, worse_sign: int, alpha: float = 0.05) -> str:
    """The conclusion of one result row; a win probability above 0.5 favours the experimental arm."""
    if row["measure"] == WIN_PROBABILITY:
        return conclusion(0.5 - row["estimate"], row["p_value"], 1, alpha)
    return conclusion(row["estimate"] - (1.0 if row["measure"] == "ratio of geometric means" else 0.0),
                      row["p_value"], worse_sign, alpha)


def agreement_sentence(results: pd.DataFrame, trial: Trial, paramcd: str, alpha: float = 0.05) -> str:
    """Whether the primary MMRM, the MI and the worst-rank analyses reach the same conclusion, per arm."""
    sign = _worse_sign(trial, paramcd)
    d = results[results["analysis"] != "Tipping point (delta-adjusted MI)"].dropna(subset=["p_value"])
    parts = []
    for contrast, g in d.groupby(d["contrast"].str.split(" - | vs ", regex=True).str[0], sort=False):
        found = {r["analysis"]: analysis_conclusion(r, sign, alpha) for _, r in g.iterrows()}
        who = f"For {contrast.lower()} against {_arm_order(trial)[0].lower()}, " if len(trial.arms) > 2 else ""
        if len(set(found.values())) == 1:
            parts.append(f"{who}all {len(found)} analyses reach the same conclusion at the {100 * alpha:g}% level: "
                         f"{next(iter(found.values()))}.")
        else:
            parts.append(f"{who}the conclusions differ at the {100 * alpha:g}% level: "
                         + "; ".join(f"{a}: {c}" for a, c in found.items()) + ".")
    return " ".join(parts)


def tipping_sentence(tp: dict, trial: Trial, paramcd: str, arm: str) -> str:
    """The tipping point in words."""
    e = trial.endpoint(paramcd)
    unit = "" if e.unit in ("", "1") else f" {e.unit}"
    worse = "higher" if _worse_sign(trial, paramcd) == 1 else "lower"
    if not np.isfinite(tp["delta"]):
        return (f"The conclusion ({tp['from_conclusion']}) holds over the whole grid, even if every missing "
                f"{e.label} change in the {arm.lower()} arm were {tp['grid_max']:g}{unit} {worse} (worse) than predicted "
                f"under missing at random.")
    return (f"The conclusion changes from '{tp['from_conclusion']}' to '{tp['to_conclusion']}' when the missing "
            f"{e.label} changes in the {arm.lower()} arm are {tp['delta']:.2f}{unit} {worse} (worse) than predicted "
            f"under missing at random.")


def tipping_report(grid_table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Report layout of the tipping-point grid: delta, estimate (95% CI), P, conclusion."""
    return pd.DataFrame({
        "Arm": grid_table["TRT01P"], "Delta": grid_table["delta"].map(lambda d: f"{d:g}"),
        "Estimate (95% CI)": [f"{e:.{digits}f} ({lo:.{digits}f} to {hi:.{digits}f})"
                              for e, lo, hi in zip(grid_table["estimate"], grid_table["lower"], grid_table["upper"])],
        "P": grid_table["p_value"].map(format_p), "Conclusion": grid_table["conclusion"]})
