"""Multiple imputation of one endpoint's changes under missing at random, and its analysis: per-arm
Bayesian regression imputation (monotone, then chained), ANCOVA in each completed data set, Rubin's rules.

Works on ``sensitivity.change_wide`` (one row per participant, one column per follow-up visit) on the
analysis scale of ``outcomes.analysis_data``. A delta can shift the imputed values of the non-control
arms in the endpoint's worse direction (``worse_sign``): the delta-adjusted (MNAR) analysis of ``tipping``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from helpers.analysis import outcomes
from helpers.trial import Trial

MI_SEED = 20250724
N_IMPUTATIONS = 50
N_BURN_IN = 20


def worse_sign(trial: Trial, paramcd: str) -> int:
    """+1 when a larger change is worse for the patient, -1 when a larger change is better."""
    return 1 if trial.endpoint(paramcd).better == "lower" else -1


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


def impute_arm(y: np.ndarray, base: np.ndarray, rng: np.random.Generator, n_burn_in: int = N_BURN_IN) -> np.ndarray:
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
                done.loc[rows, visits] = impute_arm(y, wide.loc[rows, "BASE"].to_numpy(dtype=float), rng, n_burn_in)
        long = done.melt(id_vars=keep, value_vars=visits, var_name="AVISIT", value_name="CHG")
        long["IMPUTED"] = wide.melt(id_vars=keep, value_vars=visits)["value"].isna().to_numpy()
        copies.append(long.assign(IMP=i))
    out = pd.concat(copies, ignore_index=True)
    return out[["IMP"] + keep + ["AVISIT", "CHG", "IMPUTED"]]


def ancova_fit(d: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """ANCOVA of one complete data set at one visit, CHG ~ arm + BASE (+ strata), OLS: per non-control
    arm, estimate, its variance and the residual df (the complete-data df of Rubin's rules)."""
    fit = smf.ols(outcomes.ancova_formula(trial), data=d).fit()
    rows = []
    for arm in trial.experimental_arms:
        term = f"C(TRT01P)[T.{arm.label}]"
        rows.append({"TRT01P": arm.label, "estimate": fit.params[term], "variance": fit.bse[term] ** 2,
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
    """ANCOVA at ``visit`` (AVISIT; default: the last visit) in every imputed data set, pooled by Rubin's
    rules, per non-control arm. ``delta`` (analysis-scale units, in the worse direction ``worse_sign``) is
    added to the imputed values of the non-control arms only: the delta-adjusted (MNAR) sensitivity analysis."""
    visit = visit or trial.last_visit.label
    d = completed[completed["AVISIT"] == visit].copy()
    shift = d["IMPUTED"] & (d["TRT01P"] != trial.control.label)
    d.loc[shift, "CHG"] += worse_sign * delta
    fits = pd.concat([ancova_fit(g, trial).assign(IMP=i) for i, g in d.groupby("IMP", sort=True)], ignore_index=True)
    rows = []
    for arm, f in fits.groupby("TRT01P", sort=False):
        pooled = rubin(f["estimate"], f["variance"], f["df_complete"].iloc[0], level)
        rows.append({"TRT01P": arm, "n": int(f["n"].iloc[0]),
                     "n_imputed": int(d.loc[(d["IMP"] == d["IMP"].min()) & (d["TRT01P"] == arm), "IMPUTED"].sum()),
                     "delta": delta} | pooled)
    return pd.DataFrame(rows)
