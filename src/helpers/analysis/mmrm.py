"""Mixed model for repeated measures (MMRM) with REML/ML, GLS fixed effects and Satterthwaite df.

Model (SAS PROC MIXED, REPEATED statement without RANDOM): y_i = X_i beta + e_i with
e_i ~ N(0, Sigma_i), Sigma_i the rows/columns of a visits x visits matrix Sigma at the visits subject i
was observed, subjects independent. Formulas follow the SAS/STAT PROC MIXED documentation
("Estimating Covariance Parameters", "Satterthwaite Degrees of Freedom"): the REML criterion

    -2 l_R = (N - p) log(2 pi) + sum_i log|Sigma_i| + log|X' V^-1 X| + r' V^-1 r,

beta = Phi X' V^-1 y with Phi = (X' V^-1 X)^-1, and for a contrast c the Satterthwaite (1946)
approximation df = 2 (c' Phi c)^2 / (g' W g), g = d(c' Phi c)/d theta, W = 2 H^-1 with H the Hessian
of -2 l at the estimate (the same as R package mmrm's "Satterthwaite").
"""
from __future__ import annotations

import ast
import functools
import itertools
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import patsy
from scipy import linalg, optimize, stats

__all__ = ["fit_mmrm", "MMRMResult", "MMRMFallbackWarning", "MMRMConvergenceError", "STRUCTURES", "FALLBACK_ORDER"]

FALLBACK_ORDER = ("us", "toeph", "ar1h", "ar1", "cs")
_LOG_2PI = np.log(2.0 * np.pi)


class MMRMFallbackWarning(UserWarning):
    """The requested covariance structure did not converge and a simpler one was used."""


class MMRMConvergenceError(RuntimeError):
    """No covariance structure in the fallback chain converged."""


# ---------------------------------------------------------------------------------------------
# Covariance structures: theta (unconstrained) -> Sigma (visits x visits), and a start from a guess.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Structure:
    """A covariance structure: its parameter count, its map theta -> Sigma and a starting theta."""

    name: str
    n_params: Callable[[int], int]
    sigma: Callable[[np.ndarray, int], np.ndarray]
    start: Callable[[np.ndarray], np.ndarray]


def _scaled(corr: np.ndarray, log_sd: np.ndarray) -> np.ndarray:
    sd = np.exp(log_sd)
    return corr * np.outer(sd, sd)


def _lag1_corr(s0: np.ndarray) -> float:
    """Mean lag-1 correlation of a covariance guess, kept away from +-1 to start inside the space."""
    t = s0.shape[0]
    if t < 2:
        return 0.0
    sd = np.sqrt(np.diag(s0))
    r = np.mean([s0[i, i + 1] / (sd[i] * sd[i + 1]) for i in range(t - 1)])
    return float(np.clip(r, -0.8, 0.8))


@functools.lru_cache(maxsize=None)
def _strict_lower(t: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tril_indices(t, -1)


def _us_sigma(theta: np.ndarray, t: int) -> np.ndarray:
    """Unstructured: Sigma = L L' with L lower triangular, log diagonal (as R mmrm)."""
    low = np.diag(np.exp(theta[:t]))
    low[_strict_lower(t)] = theta[t:]
    return low @ low.T


def _us_start(s0: np.ndarray) -> np.ndarray:
    low = np.linalg.cholesky(s0)
    t = s0.shape[0]
    return np.concatenate([np.log(np.diag(low)), low[np.tril_indices(t, -1)]])


def _pacf_to_acf(pacf: np.ndarray) -> np.ndarray:
    """Durbin-Levinson: partial autocorrelations in (-1, 1) give a positive definite Toeplitz correlation."""
    rho = np.zeros(len(pacf))
    phi = np.zeros(0)
    for k, p_kk in enumerate(pacf):
        rho[k] = p_kk * (1.0 - phi @ rho[:k]) + phi @ rho[:k][::-1] if k else p_kk
        phi = np.append(phi - p_kk * phi[::-1], p_kk)
    return rho


def _toeph_sigma(theta: np.ndarray, t: int) -> np.ndarray:
    """Heterogeneous Toeplitz: visit-specific SDs, lag-specific correlations (via partial autocorrelations)."""
    rho = _pacf_to_acf(np.tanh(theta[t:]))
    return _scaled(linalg.toeplitz(np.concatenate([[1.0], rho])), theta[:t])


def _toeph_start(s0: np.ndarray) -> np.ndarray:
    t = s0.shape[0]
    pacf = np.zeros(t - 1)
    if t > 1:
        pacf[0] = np.arctanh(_lag1_corr(s0))
    return np.concatenate([0.5 * np.log(np.diag(s0)), pacf])


def _ar1_corr(rho: float, t: int) -> np.ndarray:
    lag = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))
    return rho ** lag


def _ar1h_sigma(theta: np.ndarray, t: int) -> np.ndarray:
    """Heterogeneous AR(1): visit-specific SDs, correlation rho^|i-j|."""
    rho = np.tanh(theta[t]) if t > 1 else 0.0
    return _scaled(_ar1_corr(rho, t), theta[:t])


def _ar1h_start(s0: np.ndarray) -> np.ndarray:
    start = 0.5 * np.log(np.diag(s0))
    return np.append(start, np.arctanh(_lag1_corr(s0))) if s0.shape[0] > 1 else start


def _ar1_sigma(theta: np.ndarray, t: int) -> np.ndarray:
    """AR(1): common variance, correlation rho^|i-j|."""
    rho = np.tanh(theta[1]) if t > 1 else 0.0
    return _scaled(_ar1_corr(rho, t), np.full(t, theta[0]))


def _ar1_start(s0: np.ndarray) -> np.ndarray:
    start = [0.5 * np.log(np.mean(np.diag(s0)))]
    return np.array(start + ([np.arctanh(_lag1_corr(s0))] if s0.shape[0] > 1 else []))


def _cs_rho(x: float, t: int) -> float:
    low = -1.0 / (t - 1)
    return low + (1.0 - low) / (1.0 + np.exp(-x))


def _cs_sigma(theta: np.ndarray, t: int) -> np.ndarray:
    """Compound symmetry: common variance, common correlation in (-1/(T-1), 1)."""
    rho = _cs_rho(theta[1], t) if t > 1 else 0.0
    corr = np.full((t, t), rho)
    np.fill_diagonal(corr, 1.0)
    return _scaled(corr, np.full(t, theta[0]))


def _cs_start(s0: np.ndarray) -> np.ndarray:
    t = s0.shape[0]
    start = [0.5 * np.log(np.mean(np.diag(s0)))]
    if t == 1:
        return np.array(start)
    low = -1.0 / (t - 1)
    u = (max(_lag1_corr(s0), low / 2) - low) / (1.0 - low)
    return np.array(start + [np.log(u / (1.0 - u))])


STRUCTURES: dict[str, Structure] = {
    "us": Structure("us", lambda t: t * (t + 1) // 2, _us_sigma, _us_start),
    "toeph": Structure("toeph", lambda t: 2 * t - 1, _toeph_sigma, _toeph_start),
    "ar1h": Structure("ar1h", lambda t: t + (t > 1), _ar1h_sigma, _ar1h_start),
    "ar1": Structure("ar1", lambda t: 1 + (t > 1), _ar1_sigma, _ar1_start),
    "cs": Structure("cs", lambda t: 1 + (t > 1), _cs_sigma, _cs_start),
}
STRUCTURE_NAMES = {"us": "unstructured", "toeph": "heterogeneous Toeplitz", "ar1h": "heterogeneous AR(1)",
                   "ar1": "AR(1)", "cs": "compound symmetry"}


# ---------------------------------------------------------------------------------------------
# Data: subjects grouped by missingness pattern so each pattern is one batched linear-algebra call.
# ---------------------------------------------------------------------------------------------

@dataclass
class _Pattern:
    idx: np.ndarray  # visit positions observed
    x: np.ndarray  # (n_subjects, k, p)
    y: np.ndarray  # (n_subjects, k)

    def __post_init__(self):
        self.block = np.ix_(self.idx, self.idx)
        self.x_flat = self.x.reshape(-1, self.x.shape[-1])


@dataclass
class _Problem:
    patterns: list[_Pattern]
    n_visits: int
    n_obs: int
    n_coef: int
    reml: bool


def _build_patterns(x: np.ndarray, y: np.ndarray, subj: np.ndarray, vis: np.ndarray) -> list[_Pattern]:
    """Rows must be sorted by subject then visit; subjects sharing visit sets are stacked."""
    starts = np.flatnonzero(np.r_[True, subj[1:] != subj[:-1]])
    bounds = np.r_[starts, len(subj)]
    groups: dict[tuple, list[np.ndarray]] = {}
    for a, b in zip(bounds[:-1], bounds[1:]):
        groups.setdefault(tuple(vis[a:b]), []).append(np.arange(a, b))
    out = []
    for key in sorted(groups, key=lambda k: (len(k), k)):
        rows = np.vstack(groups[key])
        out.append(_Pattern(np.array(key), x[rows], y[rows]))
    return out


# ---------------------------------------------------------------------------------------------
# Likelihood, its gradient in Sigma, and the fixed-effects covariance.
# ---------------------------------------------------------------------------------------------

@dataclass
class _Eval:
    m2ll: float
    beta: np.ndarray
    phi: np.ndarray
    grad_sigma: np.ndarray  # d(-2 l)/d Sigma_ab, symmetric
    sx: list[np.ndarray]  # per pattern Sigma_i^-1 X_i


def _evaluate(sigma: np.ndarray, prob: _Problem, want_grad: bool = True) -> _Eval | None:
    """-2 log-likelihood (REML or ML) at Sigma with beta profiled out by GLS; None if Sigma is not PD."""
    if not np.all(np.isfinite(sigma)):
        return None
    p = prob.n_coef
    xtvx = np.zeros((p, p))
    xtvy = np.zeros(p)
    logdet = 0.0
    sinvs, sxs = [], []
    for pat in prob.patterns:
        try:
            chol = np.linalg.cholesky(sigma[pat.block])
        except np.linalg.LinAlgError:
            return None
        linv = np.linalg.inv(chol)
        sinv = linv.T @ linv
        sx = np.matmul(sinv, pat.x)
        sx_flat = sx.reshape(pat.x_flat.shape)
        xtvx += pat.x_flat.T @ sx_flat
        xtvy += sx_flat.T @ pat.y.ravel()
        logdet += pat.y.shape[0] * 2.0 * np.sum(np.log(np.diag(chol)))
        sinvs.append(sinv)
        sxs.append(sx)
    try:
        cx = np.linalg.cholesky(xtvx)
    except np.linalg.LinAlgError:
        return None
    cx_inv = np.linalg.inv(cx)
    phi = cx_inv.T @ cx_inv
    beta = phi @ xtvy
    quad = 0.0
    grad = np.zeros_like(sigma)
    for pat, sinv, sx in zip(prob.patterns, sinvs, sxs):
        resid = pat.y - pat.x @ beta
        sr = resid @ sinv
        quad += float(np.sum(sr * resid))
        if want_grad:
            g = pat.y.shape[0] * sinv - sr.T @ sr
            if prob.reml:
                g -= np.einsum("nkq,nlq->kl", sx @ phi, sx)
            grad[pat.block] += g
    m2ll = logdet + quad
    if prob.reml:
        m2ll += (prob.n_obs - p) * _LOG_2PI + 2.0 * np.sum(np.log(np.diag(cx)))
    else:
        m2ll += prob.n_obs * _LOG_2PI
    return _Eval(float(m2ll), beta, phi, grad, sxs)


def _sigma_jacobian(struct: Structure, theta: np.ndarray, t: int, h: float = 1e-6) -> np.ndarray:
    """d Sigma / d theta_k by central differences of the (cheap, smooth) parameter map: (m, T, T)."""
    jac = np.empty((len(theta), t, t))
    for k in range(len(theta)):
        e = np.zeros_like(theta)
        e[k] = h
        jac[k] = (struct.sigma(theta + e, t) - struct.sigma(theta - e, t)) / (2.0 * h)
    return jac


class _Objective:
    """-2 l(theta) and its analytic gradient (chain rule through d Sigma / d theta)."""

    def __init__(self, struct: Structure, prob: _Problem):
        self.struct, self.prob = struct, prob

    def value_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ev = _evaluate(self.struct.sigma(theta, self.prob.n_visits), self.prob)
            if ev is None or not np.isfinite(ev.m2ll):
                return np.inf, np.zeros_like(theta)
            jac = _sigma_jacobian(self.struct, theta, self.prob.n_visits)
            return ev.m2ll, np.einsum("ab,kab->k", ev.grad_sigma, jac)

    def hessian(self, theta: np.ndarray, h: float = 1e-4) -> np.ndarray:
        """Central differences of the analytic gradient, symmetrised."""
        m = len(theta)
        hess = np.empty((m, m))
        for k in range(m):
            e = np.zeros(m)
            e[k] = h
            hess[k] = (self.value_grad(theta + e)[1] - self.value_grad(theta - e)[1]) / (2.0 * h)
        return 0.5 * (hess + hess.T)


# ---------------------------------------------------------------------------------------------
# Fitting one structure.
# ---------------------------------------------------------------------------------------------

@dataclass
class _Fit:
    struct: Structure
    theta: np.ndarray
    sigma: np.ndarray
    ev: _Eval
    hessian: np.ndarray
    dphi: np.ndarray  # d Phi / d theta_k, (m, p, p)
    message: str


class _NotConverged(Exception):
    pass


def _newton_polish(obj: _Objective, theta: np.ndarray, steps: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A few Newton steps from the quasi-Newton solution, accepted only when -2 l does not increase."""
    f, g = obj.value_grad(theta)
    for _ in range(steps):
        if np.max(np.abs(g)) < 1e-6:
            break
        try:
            step = np.linalg.solve(obj.hessian(theta), g)
        except np.linalg.LinAlgError:
            break
        f_new, g_new = obj.value_grad(theta - step)
        if not f_new <= f + 1e-10:
            break
        theta, f, g = theta - step, f_new, g_new
    return theta, g


def _fit_structure(struct: Structure, prob: _Problem, sigma0: np.ndarray, gtol: float = 1e-3) -> _Fit:
    """REML/ML for one structure (BFGS with the analytic gradient, then Newton steps);
    raises _NotConverged on optimiser failure or a non-PD Hessian."""
    obj = _Objective(struct, prob)
    theta0 = struct.start(sigma0)
    res = optimize.minimize(obj.value_grad, theta0, jac=True, method="BFGS",
                            options={"maxiter": 1000, "gtol": 1e-6})
    if not np.isfinite(res.fun):
        raise _NotConverged(f"{struct.name}: objective not finite ({res.message})")
    theta, grad = _newton_polish(obj, res.x)
    if not np.max(np.abs(grad)) < gtol:
        raise _NotConverged(f"{struct.name}: optimiser stopped with max |gradient| "
                            f"{np.max(np.abs(grad)):.3g} ({res.message})")
    hess = obj.hessian(theta)
    eig = np.linalg.eigvalsh(hess) if np.all(np.isfinite(hess)) else np.array([np.nan])
    if not np.all(eig > 1e-8 * max(1.0, np.max(np.abs(eig)))):
        raise _NotConverged(f"{struct.name}: Hessian of -2 log-likelihood not positive definite")
    sigma = struct.sigma(theta, prob.n_visits)
    ev = _evaluate(sigma, prob)
    return _Fit(struct, theta, sigma, ev, hess, _phi_jacobian(ev, prob, struct, theta), str(res.message))


def _phi_jacobian(ev: _Eval, prob: _Problem, struct: Structure, theta: np.ndarray) -> np.ndarray:
    """d Phi / d theta_k = Phi (sum_i X_i' S_i^-1 dS_i S_i^-1 X_i) Phi."""
    jac = _sigma_jacobian(struct, theta, prob.n_visits)
    inner = np.zeros((len(theta), prob.n_coef, prob.n_coef))
    for pat, sx in zip(prob.patterns, ev.sx):
        ds = jac[:, pat.idx][:, :, pat.idx]
        inner += np.einsum("nkp,mkl,nlq->mpq", sx, ds, sx)
    return np.einsum("pr,mrs,sq->mpq", ev.phi, inner, ev.phi)


def _start_sigma(x: np.ndarray, y: np.ndarray, subj: np.ndarray, vis: np.ndarray, t: int) -> np.ndarray:
    """Pairwise covariance of OLS residuals by visit, made positive definite."""
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    wide = pd.DataFrame({"s": subj, "v": vis, "r": resid}).pivot(index="s", columns="v", values="r")
    wide = wide.reindex(columns=range(t))
    s0 = wide.cov(min_periods=2).to_numpy()
    var = np.nan_to_num(np.diag(s0), nan=np.nanvar(resid))
    var = np.where(var > 0, var, np.var(resid) + 1e-8)
    s0 = np.nan_to_num(s0, nan=0.0)
    np.fill_diagonal(s0, var)
    w, v = np.linalg.eigh(s0)
    s0 = (v * np.maximum(w, 1e-3 * w.max())) @ v.T
    return 0.5 * (s0 + s0.T)


# ---------------------------------------------------------------------------------------------
# Design: categorical coding with chosen references, rows with missing values dropped.
# ---------------------------------------------------------------------------------------------

def _natural_key(value) -> tuple:
    return tuple(int(s) if s.isdigit() else s for s in re.split(r"(\d+)", str(value)))


def _formula_variables(formula: str, columns) -> list[str]:
    """Data columns named anywhere in the formula (also inside calls such as C(x) or np.log(x))."""
    desc = patsy.ModelDesc.from_formula(formula)
    names: list[str] = []
    for term in desc.lhs_termlist + desc.rhs_termlist:
        for factor in term.factors:
            for node in ast.walk(ast.parse(factor.code, mode="eval")):
                if isinstance(node, ast.Name) and node.id in columns and node.id not in names:
                    names.append(node.id)
    return names


def _is_categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _categorize(s: pd.Series, order: list | None, ref: str | None) -> pd.Categorical:
    levels = list(order) if order is not None else (
        list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype)
        else sorted(s.dropna().unique(), key=_natural_key))
    present = set(s.dropna())
    if present - set(levels):
        raise ValueError(f"{s.name!r} values not in visit_order: {sorted(present - set(levels), key=_natural_key)}")
    levels = [lv for lv in levels if lv in present]
    if ref is not None:
        if ref not in levels:
            raise ValueError(f"reference level {ref!r} not found in {s.name!r} (levels: {levels})")
        levels = [ref] + [lv for lv in levels if lv != ref]
    return pd.Categorical(s, categories=levels)


def _prepare(data: pd.DataFrame, formula: str, subject: str, visit: str,
             reference: dict | None, visit_order: list | None) -> tuple[pd.DataFrame, list[str], list[str], list]:
    """Analysis rows (complete cases, sorted by subject and visit) with categorical columns coded."""
    reference = dict(reference or {})
    variables = _formula_variables(formula, data.columns)
    unknown = set(reference) - set(variables)
    if unknown:
        raise ValueError(f"reference given for variables not in the formula: {sorted(unknown)}")
    df = data[list(dict.fromkeys(variables + [subject, visit]))].dropna().copy()
    if df.empty:
        raise ValueError("no complete rows to analyse")
    visits = _categorize(df[visit], visit_order, None)
    visit_levels = list(visits.categories)
    categorical = [v for v in variables[1:] if _is_categorical(df[v])]
    for v in categorical:
        df[v] = _categorize(df[v], visit_levels if v == visit else None, reference.get(v))
    df["_visit_pos"] = visits.codes
    df = df.sort_values([subject, "_visit_pos"], kind="mergesort")
    if df.duplicated([subject, "_visit_pos"]).any():
        raise ValueError(f"more than one row per {subject} and {visit}")
    numeric = [v for v in variables[1:] if v not in categorical]
    return df, categorical, numeric, visit_levels


# ---------------------------------------------------------------------------------------------
# Result.
# ---------------------------------------------------------------------------------------------

def _satterthwaite(c: np.ndarray, fit: _Fit) -> tuple[float, float, float]:
    """Estimate, SE and Satterthwaite df of c' beta: df = 2 (c' Phi c)^2 / (g' W g), W = 2 H^-1."""
    var = float(c @ fit.ev.phi @ c)
    g = np.einsum("p,mpq,q->m", c, fit.dphi, c)
    w = 2.0 * np.linalg.inv(fit.hessian)
    denom = float(g @ w @ g)
    df = 2.0 * var ** 2 / denom if denom > 0 else np.inf
    return float(c @ fit.ev.beta), float(np.sqrt(var)), df


@dataclass
class MMRMResult:
    """A fitted MMRM: coefficients with Satterthwaite df, Sigma, -2 log-likelihood, LS means."""

    coef: pd.DataFrame
    covariance_matrix: pd.DataFrame
    minus2_loglik: float
    n_obs: int
    n_subjects: int
    converged: bool
    covariance: str
    covariance_requested: str
    fallback_reason: str | None
    reml: bool
    formula: str
    theta: np.ndarray
    _fit: _Fit = field(repr=False)
    _design_info: patsy.DesignInfo = field(repr=False)
    _levels: dict = field(repr=False)
    _numeric_means: dict = field(repr=False)

    def contrast(self, L: np.ndarray):
        """Estimate, SE and Satterthwaite df of L beta; L a vector (floats back) or a matrix (one per row)."""
        arr = np.asarray(L, dtype=float)
        if arr.shape[-1] != len(self.coef):
            raise ValueError(f"L needs {len(self.coef)} columns, got {arr.shape[-1]}")
        if arr.ndim == 1:
            return _satterthwaite(arr, self._fit)
        est, se, df = zip(*(_satterthwaite(row, self._fit) for row in arr))
        return np.array(est), np.array(se), np.array(df)

    def _grid_rows(self, spec: str, by: str | None) -> tuple[pd.DataFrame, np.ndarray]:
        """Coefficient vectors of LS means: design rows averaged with equal weights over the other factors."""
        for v in (spec, by):
            if v is not None and v not in self._levels:
                raise ValueError(f"{v!r} is not a categorical variable of the model")
        names = list(self._levels)
        grid = pd.DataFrame(list(itertools.product(*self._levels.values())), columns=names)
        for v in names:
            grid[v] = pd.Categorical(grid[v], categories=self._levels[v])
        for v, m in self._numeric_means.items():
            grid[v] = m
        (x,) = patsy.build_design_matrices([self._design_info], grid)
        keys = [k for k in (by, spec) if k is not None]
        cells = pd.DataFrame(np.asarray(x), columns=self.coef.index)
        cells[keys] = grid[keys].astype(object)
        mean = cells.groupby(keys, sort=False, observed=True).mean()
        order = pd.MultiIndex.from_product([self._levels[k] for k in keys], names=keys)
        mean = mean.reindex(order if len(keys) > 1 else order.get_level_values(0))
        return mean.index.to_frame(index=False), mean.to_numpy()

    def lsmeans(self, spec: str, by: str | None = None, level: float = 0.95) -> pd.DataFrame:
        """LS means of `spec` per level of `by` (SAS LSMEANS: equal weights over other factors' levels,
        numeric covariates at their mean over the analysis rows)."""
        labels, rows = self._grid_rows(spec, by)
        return pd.concat([labels, self._table(rows, level, with_test=False)], axis=1)

    def lsmean_differences(self, spec: str, by: str | None = None, reference: str | None = None,
                           level: float = 0.95) -> pd.DataFrame:
        """Each level of `spec` minus `reference` (default: its reference level), per level of `by`."""
        labels, rows = self._grid_rows(spec, by)
        ref = self._levels[spec][0] if reference is None else reference
        if ref not in self._levels[spec]:
            raise ValueError(f"{ref!r} is not a level of {spec!r}")
        out_labels, out_rows = [], []
        by_levels = self._levels[by] if by is not None else [None]
        for b in by_levels:
            in_by = labels[by] == b if by is not None else np.ones(len(labels), bool)
            ref_row = rows[np.flatnonzero(in_by & (labels[spec] == ref))[0]]
            for lv in self._levels[spec]:
                if lv == ref:
                    continue
                out_rows.append(rows[np.flatnonzero(in_by & (labels[spec] == lv))[0]] - ref_row)
                out_labels.append(({by: b} if by is not None else {}) | {"contrast": f"{lv} - {ref}"})
        return pd.concat([pd.DataFrame(out_labels), self._table(np.array(out_rows), level, True)], axis=1)

    def _table(self, rows: np.ndarray, level: float, with_test: bool) -> pd.DataFrame:
        est, se, df = self.contrast(np.atleast_2d(rows))
        q = stats.t.ppf(0.5 + level / 2.0, df)
        table = pd.DataFrame({"estimate": est, "se": se, "df": df, "lower": est - q * se, "upper": est + q * se})
        if with_test:
            table["t"] = est / se
            table["p_value"] = 2.0 * stats.t.sf(np.abs(table["t"]), df)
        return table


def _coef_table(fit: _Fit, names: list[str]) -> pd.DataFrame:
    rows = [_satterthwaite(np.eye(len(names))[j], fit) for j in range(len(names))]
    table = pd.DataFrame(rows, columns=["estimate", "se", "df"], index=pd.Index(names, name="term"))
    table["t"] = table["estimate"] / table["se"]
    table["p_value"] = 2.0 * stats.t.sf(np.abs(table["t"]), table["df"])
    return table


def _fit_with_fallback(prob: _Problem, sigma0: np.ndarray, requested: str) -> tuple[_Fit, str | None]:
    chain = FALLBACK_ORDER[FALLBACK_ORDER.index(requested):] if requested in FALLBACK_ORDER else (requested,)
    reasons = []
    for name in chain:
        try:
            fit = _fit_structure(STRUCTURES[name], prob, sigma0)
        except _NotConverged as exc:
            reasons.append(str(exc))
            continue
        reason = "; ".join(reasons) or None
        if reason:
            warnings.warn(f"MMRM covariance {requested!r} did not converge, used {name!r}: {reason}",
                          MMRMFallbackWarning, stacklevel=3)
        return fit, reason
    raise MMRMConvergenceError("no covariance structure converged: " + "; ".join(reasons))


def fit_mmrm(data: pd.DataFrame, formula: str, subject: str, visit: str, covariance: str = "us",
             reml: bool = True, reference: dict[str, str] | None = None,
             visit_order: list | None = None) -> MMRMResult:
    """Fit an MMRM (SAS PROC MIXED with REPEATED visit / SUBJECT=subject TYPE=..., DDFM=SATTERTHWAITE).

    Rows with a missing response or covariate are dropped. Categorical factors use treatment coding
    with `reference` levels (default: first in natural order); `visit_order` orders Sigma's visits.
    If `covariance` does not converge the next of us -> toeph -> ar1h -> ar1 -> cs is used, with a
    MMRMFallbackWarning and `fallback_reason` set; MMRMConvergenceError if none converges.
    """
    if covariance not in STRUCTURES:
        raise ValueError(f"covariance must be one of {sorted(STRUCTURES)}, got {covariance!r}")
    df, categorical, numeric, visit_levels = _prepare(data, formula, subject, visit, reference, visit_order)
    y_df, x_df = patsy.dmatrices(formula, df, return_type="dataframe", NA_action="raise")
    x, y = x_df.to_numpy(dtype=float), y_df.to_numpy(dtype=float)[:, 0]
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise ValueError("design matrix is rank deficient (empty cells or collinear covariates)")
    subj = pd.factorize(df[subject], sort=True)[0]
    vis = df["_visit_pos"].to_numpy()
    t = len(visit_levels)
    prob = _Problem(_build_patterns(x, y, subj, vis), t, len(y), x.shape[1], reml)
    fit, reason = _fit_with_fallback(prob, _start_sigma(x, y, subj, vis, t), covariance)
    return MMRMResult(
        coef=_coef_table(fit, list(x_df.columns)),
        covariance_matrix=pd.DataFrame(fit.sigma, index=visit_levels, columns=visit_levels),
        minus2_loglik=fit.ev.m2ll,
        n_obs=len(y),
        n_subjects=int(subj.max()) + 1,
        converged=True,
        covariance=fit.struct.name,
        covariance_requested=covariance,
        fallback_reason=reason,
        reml=reml,
        formula=formula,
        theta=fit.theta,
        _fit=fit,
        _design_info=x_df.design_info,
        _levels={v: list(df[v].cat.categories) for v in categorical},
        _numeric_means={v: float(df[v].mean()) for v in numeric},
    )
