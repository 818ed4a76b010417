"""Multiple imputation of one endpoint's changes under missing at random, and its analysis: per-arm
Bayesian regression imputation (monotone, then chained), ANCOVA in each completed data set, Rubin's rules.

Works on ``sensitivity.change_wide`` (one row per participant, one column per follow-up visit) on the
analysis scale of ``outcomes.analysis_data``. A delta can shift the imputed values of the non-control
arms in the endpoint's worse direction (``worse_sign``): the delta-adjusted (MNAR) analysis of ``tipping``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
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


def _visit_models(observed: np.ndarray, earlier_only: bool) -> list[tuple[int, list[int]]]:
    """Each visit with a missing value and the visits its regression uses: the farthest are dropped when
    the observed rows cannot support them (at least 2 residual df). Fixed by the missingness pattern, so
    chosen once per arm rather than at every draw."""
    models = []
    for t in range(observed.shape[1]):
        if observed[:, t].all():
            continue
        cols = _predictors(t, observed.shape[1], earlier_only)
        while cols and observed[:, t].sum() - (2 + len(cols)) < 2:
            cols = cols[:-1]
        models.append((t, cols))
    return models


def _impute_visit(y: np.ndarray, base: np.ndarray, observed: np.ndarray, t: int, cols: list[int],
                  rng: np.random.Generator) -> None:
    """Redraw the missing values of visit t in place from a regression on baseline and the visits ``cols``."""
    obs = observed[:, t]
    x = np.column_stack([np.ones(len(y)), base, y[:, cols]])
    y[~obs, t] = bayesian_regression_draw(x[obs], y[obs, t], x[~obs], rng)


def impute_arm(y: np.ndarray, base: np.ndarray, rng: np.random.Generator, n_burn_in: int = N_BURN_IN) -> np.ndarray:
    """One completed copy of one arm's visits: a monotone regression pass (SAS PROC MI MONOTONE REG),
    then, when the missingness is not monotone, chained (FCS) iterations on baseline and all other visits."""
    observed = ~np.isnan(y)
    y = y.copy()
    for t, cols in _visit_models(observed, earlier_only=True):
        _impute_visit(y, base, observed, t, cols, rng)
    if not is_monotone(observed):
        chained = _visit_models(observed, earlier_only=False)
        for _ in range(n_burn_in):
            for t, cols in chained:
                _impute_visit(y, base, observed, t, cols, rng)
    return y


def _impute_copy(y: np.ndarray, base: np.ndarray, arms: list[np.ndarray], rng: np.random.Generator,
                 n_burn_in: int) -> np.ndarray:
    """One completed copy of all participants' visits, the arms imputed one after the other."""
    done = y.copy()
    for rows in arms:
        done[rows] = impute_arm(y[rows], base[rows], rng, n_burn_in)
    return done


def _long_copies(wide: pd.DataFrame, keep: list[str], visits: list[str], copies: np.ndarray) -> pd.DataFrame:
    """The m completed copies (m x participants x visits) in the long format of ``impute_changes``: per
    copy, each visit's rows in the order of ``wide`` (as ``DataFrame.melt``), the copies one after the other."""
    m, n, v = copies.shape
    out = wide[keep].iloc[np.tile(np.arange(n), m * v)].reset_index(drop=True)
    out.insert(0, "IMP", np.repeat(np.arange(1, m + 1), n * v))
    out["AVISIT"] = pd.Series(np.tile(np.repeat(visits, n), m), dtype=wide.columns.dtype)
    out["CHG"] = copies.transpose(0, 2, 1).ravel()
    out["IMPUTED"] = np.tile(np.isnan(wide[visits].to_numpy(dtype=float)).T.ravel(), m)
    return out


def observed_visits(wide: pd.DataFrame, trial: Trial) -> list[str]:
    """Labels of the follow-up visits of ``change_wide`` with at least one observed change: a visit without
    data is left out of the analyses rather than imputed from nothing."""
    return [v.label for v in trial.followup_visits if v.label in wide and wide[v.label].notna().any()]


def impute_changes(wide: pd.DataFrame, trial: Trial, m: int = N_IMPUTATIONS, seed: int = MI_SEED,
                   n_burn_in: int = N_BURN_IN) -> pd.DataFrame:
    """m completed copies of ``change_wide`` under MAR, imputing by arm (regression on baseline and the
    other visits, parameters drawn from their posterior), over the ``observed_visits``. Long format: IMP
    (1..m), USUBJID, TRT01P, BASE, strata, AVISIT, CHG, IMPUTED (True where the value was missing)."""
    visits = observed_visits(wide, trial)
    rng = np.random.default_rng(seed)
    keep = [c for c in wide.columns if c not in {v.label for v in trial.followup_visits}]
    in_arm = ((wide["TRT01P"] == arm).to_numpy() for arm in wide["TRT01P"].cat.categories)
    arms = [rows for rows in in_arm if rows.any()]
    y, base = wide[visits].to_numpy(dtype=float), wide["BASE"].to_numpy(dtype=float)
    return _long_copies(wide, keep, visits, np.stack([_impute_copy(y, base, arms, rng, n_burn_in) for _ in range(m)]))


def _ancova_matrices(d: pd.DataFrame, trial: Trial) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Response and design of the ANCOVA (one formula parse), rows with a missing value dropped as
    statsmodels does; both keep the index of ``d``."""
    return patsy.dmatrices(outcomes.ancova_formula(trial), d, NA_action="drop", return_type="dataframe")


@dataclass(frozen=True)
class LeastSquares:
    """OLS on a fixed design, factored once as statsmodels OLS does (SVD pseudo-inverse, numerical rank),
    so that each response on that design costs a matrix product."""
    x: np.ndarray
    pinv: np.ndarray
    cov_diag: np.ndarray
    rank: int

    @classmethod
    def factor(cls, x: np.ndarray) -> LeastSquares:
        """Pseudo-inverse with singular values below 1e-15 of the largest set to zero, and the rank."""
        u, s, vt = np.linalg.svd(x, full_matrices=False)
        inv_s = np.divide(1.0, s, out=np.zeros_like(s), where=s > 1e-15 * s.max())
        pinv = vt.T @ (inv_s[:, None] * u.T)
        rank = int(np.sum(s > s.max() * len(s) * np.finfo(float).eps))
        return cls(x, pinv, np.einsum("ij,ij->i", pinv, pinv), rank)

    @property
    def df_resid(self) -> float:
        return float(len(self.x) - self.rank)

    def fit(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients and their variances (residual variance times the diagonal of (X'X)^-1)."""
        beta = self.pinv @ y
        resid = y - self.x @ beta
        return beta, np.dot(resid, resid) / self.df_resid * self.cov_diag


def _arm_columns(design: pd.DataFrame, trial: Trial) -> dict[str, int]:
    """Column of each non-control arm's treatment term in the ANCOVA design."""
    names = list(design.columns)
    return {arm.label: names.index(f"C(TRT01P)[T.{arm.label}]") for arm in trial.experimental_arms}


def ancova_fit(d: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """ANCOVA of one complete data set at one visit, CHG ~ arm + BASE (+ strata), OLS: per non-control
    arm, estimate, its variance and the residual df (the complete-data df of Rubin's rules)."""
    y, x = _ancova_matrices(d, trial)
    ls = LeastSquares.factor(x.to_numpy())
    beta, variance = ls.fit(y.iloc[:, 0].to_numpy())
    return pd.DataFrame([{"TRT01P": arm, "estimate": beta[j], "variance": variance[j], "df_complete": ls.df_resid,
                          "n": len(ls.x)} for arm, j in _arm_columns(x, trial).items()])


@dataclass(frozen=True)
class VisitDesign:
    """The completed data at one visit, ready for the ANCOVA of every imputation at any delta: the formula
    is parsed once and each imputation's design factored once, so the delta-adjusted refits of the tipping
    point are matrix products only. Per imputation (ascending IMP): its least squares, response (CHG) and
    the rows a delta moves (imputed values of the non-control arms)."""
    fits: list[LeastSquares]
    y: list[np.ndarray]
    shift: list[np.ndarray]
    columns: dict[str, int]
    n_imputed: dict[str, int]


def visit_design(completed: pd.DataFrame, trial: Trial, visit: str | None = None) -> VisitDesign:
    """``completed`` (``impute_changes``) at ``visit`` (default: the last visit) as a ``VisitDesign``."""
    visit = visit or trial.last_visit.label
    d = completed[completed["AVISIT"] == visit]
    y, x = _ancova_matrices(d, trial)
    kept = d.loc[y.index]
    imp = kept["IMP"].to_numpy()
    shift = (kept["IMPUTED"] & (kept["TRT01P"] != trial.control.label)).to_numpy()
    first = d[d["IMP"] == d["IMP"].min()]
    columns = _arm_columns(x, trial)
    rows = [imp == i for i in np.unique(imp)]
    return VisitDesign(fits=[LeastSquares.factor(x.to_numpy()[r]) for r in rows],
                       y=[y.iloc[:, 0].to_numpy()[r] for r in rows], shift=[shift[r] for r in rows], columns=columns,
                       n_imputed={arm: int(first.loc[first["TRT01P"] == arm, "IMPUTED"].sum()) for arm in columns})


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


def pooled_ancova(design: VisitDesign, delta: float = 0.0, worse_sign: int = 1, level: float = 0.95) -> pd.DataFrame:
    """``mi_ancova`` on a ``VisitDesign``: the ANCOVA of each imputation with ``delta`` added in the worse
    direction to the imputed values of the non-control arms, pooled by Rubin's rules per non-control arm."""
    fits = [ls.fit(np.where(shift, y + worse_sign * delta, y)) for ls, y, shift in zip(design.fits, design.y, design.shift)]
    beta, variance = np.array([b for b, _ in fits]), np.array([v for _, v in fits])
    first = design.fits[0]
    return pd.DataFrame([{"TRT01P": arm, "n": len(first.x), "n_imputed": design.n_imputed[arm], "delta": delta}
                         | rubin(beta[:, j], variance[:, j], first.df_resid, level) for arm, j in design.columns.items()])


def mi_ancova(completed: pd.DataFrame, trial: Trial, visit: str | None = None, delta: float = 0.0,
              worse_sign: int = 1, level: float = 0.95) -> pd.DataFrame:
    """ANCOVA at ``visit`` (AVISIT; default: the last visit) in every imputed data set, pooled by Rubin's
    rules, per non-control arm. ``delta`` (analysis-scale units, in the worse direction ``worse_sign``) is
    added to the imputed values of the non-control arms only: the delta-adjusted (MNAR) sensitivity analysis."""
    return pooled_ancova(visit_design(completed, trial, visit), delta, worse_sign, level)
