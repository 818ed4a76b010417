"""Mixed model for repeated measures (MMRM) with REML/ML, GLS fixed effects and Satterthwaite df.

Model (SAS PROC MIXED, REPEATED statement without RANDOM): y_i = X_i beta + e_i with
e_i ~ N(0, Sigma_i), Sigma_i the rows/columns of a visits x visits matrix Sigma at the visits subject i
was observed, subjects independent. Formulas follow the SAS/STAT PROC MIXED documentation
("Estimating Covariance Parameters", "Satterthwaite Degrees of Freedom"): the REML criterion

    -2 l_R = (N - p) log(2 pi) + sum_i log|Sigma_i| + log|X' V^-1 X| + r' V^-1 r,

beta = Phi X' V^-1 y with Phi = (X' V^-1 X)^-1, and for a contrast c the Satterthwaite (1946)
approximation df = 2 (c' Phi c)^2 / (g' W g), g = d(c' Phi c)/d theta, W = 2 H^-1 with H the Hessian
of -2 l at the estimate (the same as R package mmrm's "Satterthwaite").

Computation: subjects are grouped by missingness pattern and only each pattern's sums of z z' (z the
design row and response at a visit) are kept, so -2 l and its derivatives cost a few small batched
matrix products whatever the number of subjects. -2 l is minimised over theta (Sigma's unconstrained
parameters) by Newton-Raphson with the analytic gradient and Hessian, as SAS does by default; that
Hessian is also the H of the Satterthwaite df.
"""
from __future__ import annotations

import ast
import functools
import itertools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy
from scipy import stats

__all__ = ["FALLBACK_ORDER", "STRUCTURES", "MMRMConvergenceError", "MMRMFallbackWarning", "MMRMResult", "fit_mmrm"]

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
    """A covariance structure: its parameter count, its map theta -> Sigma, a starting theta and,
    optionally in closed form, d Sigma / d theta (else by complex steps through `sigma`, which must then
    accept a complex theta) and the curvature sum_ab G_ab d2 Sigma_ab / d theta_j d theta_k for a given
    G (else by differences of that Jacobian)."""

    name: str
    n_params: Callable[[int], int]
    sigma: Callable[[np.ndarray, int], np.ndarray]
    start: Callable[[np.ndarray], np.ndarray]
    jacobian: Callable[[np.ndarray, int], np.ndarray] | None = None
    curvature: Callable[[np.ndarray, int, np.ndarray], np.ndarray] | None = None


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


@functools.cache
def _us_positions(t: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column in L of each unstructured parameter: the diagonal first, then the strict lower triangle."""
    rows, cols = np.tril_indices(t, -1)
    return np.r_[np.arange(t), rows], np.r_[np.arange(t), cols]


def _us_factor(theta: np.ndarray, t: int) -> np.ndarray:
    low = np.zeros((t, t), dtype=theta.dtype)
    low[_us_positions(t)] = np.r_[np.exp(theta[:t]), theta[t:]]
    return low


def _us_sigma(theta: np.ndarray, t: int) -> np.ndarray:
    """Unstructured: Sigma = L L' with L lower triangular, log diagonal (as R mmrm)."""
    low = _us_factor(theta, t)
    return low @ low.T


def _us_jacobian(theta: np.ndarray, t: int) -> np.ndarray:
    """d Sigma / d theta_k = dL_k L' + L dL_k', dL_k holding the one entry of L that theta_k moves."""
    low = _us_factor(theta, t)
    rows, cols = _us_positions(t)
    d_low = np.zeros((len(theta), t, t))
    d_low[np.arange(len(theta)), rows, cols] = np.where(rows == cols, low[rows, cols], 1.0)
    half = d_low @ low.T
    return half + half.transpose(0, 2, 1)


def _us_curvature(theta: np.ndarray, t: int, g: np.ndarray) -> np.ndarray:
    """sum_ab G_ab d2 Sigma_ab / d theta_j d theta_k for Sigma = L L': 2 <G, dL_j dL_k'>, plus
    <G, d Sigma / d theta_j> on the diagonal for log-diagonal parameters (exp is its own derivative)."""
    low = _us_factor(theta, t)
    rows, cols = _us_positions(t)
    d = np.where(rows == cols, low[rows, cols], 1.0)
    curv = 2.0 * np.outer(d, d) * g[np.ix_(rows, rows)] * (cols[:, None] == cols[None, :])
    curv[np.arange(t), np.arange(t)] += 2.0 * np.diag(low) * np.diag(g @ low)
    return curv


def _us_start(s0: np.ndarray) -> np.ndarray:
    low = np.linalg.cholesky(s0)
    t = s0.shape[0]
    return np.concatenate([np.log(np.diag(low)), low[np.tril_indices(t, -1)]])


@functools.cache
def _lags(t: int) -> np.ndarray:
    return np.abs(np.subtract.outer(np.arange(t), np.arange(t)))


def _dot(a: list, b: list):
    return sum(u * v for u, v in zip(a, b))


def _pacf_to_acf(pacf: np.ndarray) -> np.ndarray:
    """Durbin-Levinson: partial autocorrelations in (-1, 1) give a positive definite Toeplitz correlation.
    Plain Python numbers: T is small and the derivatives call this many times."""
    rho: list = []
    phi: list = []
    for p_kk in pacf.tolist():
        rho.append(p_kk * (1.0 - _dot(phi, rho)) + _dot(phi, rho[::-1]) if rho else p_kk)
        phi = [a - p_kk * b for a, b in zip(phi, phi[::-1])] + [p_kk]
    return np.array(rho, dtype=pacf.dtype)


def _toeph_sigma(theta: np.ndarray, t: int) -> np.ndarray:
    """Heterogeneous Toeplitz: visit-specific SDs, lag-specific correlations (via partial autocorrelations)."""
    acf = np.concatenate([[1.0], _pacf_to_acf(np.tanh(theta[t:]))])
    return _scaled(acf[_lags(t)], theta[:t])


def _toeph_start(s0: np.ndarray) -> np.ndarray:
    t = s0.shape[0]
    pacf = np.zeros(t - 1)
    if t > 1:
        pacf[0] = np.arctanh(_lag1_corr(s0))
    return np.concatenate([0.5 * np.log(np.diag(s0)), pacf])


def _ar1_corr(rho: float, t: int) -> np.ndarray:
    return rho ** _lags(t)


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
    "us": Structure("us", lambda t: t * (t + 1) // 2, _us_sigma, _us_start, _us_jacobian, _us_curvature),
    "toeph": Structure("toeph", lambda t: 2 * t - 1, _toeph_sigma, _toeph_start),
    "ar1h": Structure("ar1h", lambda t: t + (t > 1), _ar1h_sigma, _ar1h_start),
    "ar1": Structure("ar1", lambda t: 1 + (t > 1), _ar1_sigma, _ar1_start),
    "cs": Structure("cs", lambda t: 1 + (t > 1), _cs_sigma, _cs_start),
}
STRUCTURE_NAMES = {"us": "unstructured", "toeph": "heterogeneous Toeplitz", "ar1h": "heterogeneous AR(1)",
                   "ar1": "AR(1)", "cs": "compound symmetry"}


# ---------------------------------------------------------------------------------------------
# Data: per missingness pattern (visits observed), the sums over its subjects of z_ik z_il' with
# z = (x, y). The likelihood and its derivatives need only these, so an evaluation costs a handful of
# batched calls whatever the number of subjects.
# ---------------------------------------------------------------------------------------------

@dataclass
class _Problem:
    observed: np.ndarray  # (P, T) visits observed in each pattern
    count: np.ndarray  # (P,) subjects per pattern
    zz: np.ndarray  # (P*T*T, (p+1)^2): sum_i z_ik z_il', z_ik = (design row, response) of subject i at visit k
    n_visits: int
    n_obs: int
    n_coef: int
    reml: bool

    def __post_init__(self):
        self.pair = self.observed[:, :, None] & self.observed[:, None, :]
        self.eye = np.eye(self.n_visits)


def _wide(z: np.ndarray, subj: np.ndarray, vis: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows as a subjects x visits x columns array, zero where a visit is not observed, and that mask."""
    n = int(subj.max()) + 1
    zw = np.zeros((n, t, z.shape[1]))
    seen = np.zeros((n, t), dtype=bool)
    zw[subj, vis], seen[subj, vis] = z, True
    return zw, seen


def _build_problem(x: np.ndarray, y: np.ndarray, subj: np.ndarray, vis: np.ndarray, t: int,
                   reml: bool) -> _Problem:
    """Group subjects by missingness pattern and sum their cross-products (zero at unobserved visits)."""
    zw, seen = _wide(np.column_stack([x, y]), subj, vis, t)
    observed, pattern = np.unique(seen, axis=0, return_inverse=True)
    q = zw.shape[2]
    zz = np.empty((len(observed), t, t, q, q))
    for a in range(len(observed)):
        za = zw[pattern == a].reshape(-1, t * q)
        zz[a] = (za.T @ za).reshape(t, q, t, q).transpose(0, 2, 1, 3)
    return _Problem(observed, np.bincount(pattern), zz.reshape(-1, q * q), t, len(y), x.shape[1], reml)


# ---------------------------------------------------------------------------------------------
# Likelihood and its derivatives. With M = V^-1 - V^-1 X Phi X' V^-1, V_j = dV/d theta_j and
# G = d(-2 l)/d Sigma (entry-wise, as if the entries of Sigma were free):
#   d(-2 l)/d theta_j = <G, d Sigma/d theta_j>,
#   d2(-2 l)/d theta_j d theta_k = -tr(M V_j M V_k) + 2 y'M V_j M V_k M y + <G, d2 Sigma/d theta_j d theta_k>
# for REML (ML: V^-1 in place of M in the trace), each expanded into sums over patterns of T x T products.
# ---------------------------------------------------------------------------------------------

@dataclass
class _Eval:
    m2ll: float
    beta: np.ndarray
    phi: np.ndarray
    sinv: np.ndarray  # (P, T, T) per pattern Sigma_i^-1, zero at unobserved visits
    weight: np.ndarray  # (P, T, T) per pattern sum_i r_i r_i' (+ X_i Phi X_i' for REML)
    grad_sigma: np.ndarray  # d(-2 l)/d Sigma_ab, symmetric


def _pattern_inverses(sigma: np.ndarray, prob: _Problem) -> tuple[np.ndarray, float] | None:
    """Per pattern Sigma_i^-1 (embedded in T x T) and sum_i log|Sigma_i|; None if some Sigma_i is not PD.

    Unobserved visits get a unit diagonal and no covariance, which leaves the observed block's
    Cholesky factor, inverse and determinant unchanged."""
    try:
        chol = np.linalg.cholesky(np.where(prob.pair, sigma, prob.eye))
    except np.linalg.LinAlgError:
        return None
    linv = np.linalg.inv(chol)
    sinv = (linv.transpose(0, 2, 1) @ linv) * prob.pair
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    return sinv, float(prob.count @ logdet)


def _evaluate(sigma: np.ndarray, prob: _Problem) -> _Eval | None:
    """-2 log-likelihood (REML or ML) at Sigma with beta profiled out by GLS, and its gradient in Sigma;
    None if Sigma is not positive definite.

    The Cholesky factor of Z' V^-1 Z, Z = (X, y), holds that of X' V^-1 X, the GLS solution and, in its
    last diagonal entry, the square root of r' V^-1 r (never negative, whatever the rounding)."""
    if not np.all(np.isfinite(sigma)):
        return None
    inverses = _pattern_inverses(sigma, prob)
    if inverses is None:
        return None
    sinv, logdet = inverses
    p = prob.n_coef
    ztvz = (sinv.reshape(-1) @ prob.zz).reshape(p + 1, p + 1)
    try:
        chol = np.linalg.cholesky(0.5 * (ztvz + ztvz.T))
    except np.linalg.LinAlgError:
        return None
    cx_inv = np.linalg.inv(chol[:p, :p])
    phi = cx_inv.T @ cx_inv
    beta = cx_inv.T @ chol[p, :p]
    m2ll = logdet + chol[p, p] ** 2
    if prob.reml:
        m2ll += (prob.n_obs - p) * _LOG_2PI + 2.0 * np.sum(np.log(np.diag(chol)[:p]))
    else:
        m2ll += prob.n_obs * _LOG_2PI
    weight = (prob.zz @ _weight_matrix(beta, phi, prob.reml).reshape(-1)).reshape(sinv.shape)
    grad = prob.count @ sinv.reshape(len(sinv), -1) - (sinv @ weight @ sinv).sum(axis=0).reshape(-1)
    return _Eval(float(m2ll), beta, phi, sinv, weight, grad.reshape(sigma.shape))


def _residual_coef(beta: np.ndarray) -> np.ndarray:
    """c with z c = y - x beta."""
    return np.append(-beta, 1.0)


def _weight_matrix(beta: np.ndarray, phi: np.ndarray, reml: bool) -> np.ndarray:
    """The matrix that turns sums of z z' into sums of r r' (+ X Phi X' for REML)."""
    c = _residual_coef(beta)
    out = np.outer(c, c)
    if reml:
        out[:-1, :-1] += phi
    return out


def _sigma_jacobian(struct: Structure, theta: np.ndarray, t: int, h: float = 1e-20) -> np.ndarray:
    """d Sigma / d theta_k, (m, T, T): closed form where the structure has one, else by complex steps,
    Im Sigma(theta + i h e_k) / h, exact to rounding (no subtractive cancellation)."""
    if struct.jacobian is not None:
        return struct.jacobian(theta, t)
    steps = theta + 1j * h * np.eye(len(theta))
    return np.array([np.imag(struct.sigma(step, t)) for step in steps]) / h


def _sigma_curvature(struct: Structure, theta: np.ndarray, t: int, g: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """sum_ab G_ab d2 Sigma_ab / d theta_j d theta_k: closed form where the structure has one, else
    central differences of the (exact) Jacobian."""
    if struct.curvature is not None:
        return struct.curvature(theta, t, g)
    m = len(theta)
    out = np.empty((m, m))
    for k in range(m):
        e = np.zeros(m)
        e[k] = h
        up, down = _sigma_jacobian(struct, theta + e, t), _sigma_jacobian(struct, theta - e, t)
        out[:, k] = (up - down).reshape(m, -1) @ g.reshape(-1) / (2.0 * h)
    return 0.5 * (out + out.T)


@dataclass
class _Derivatives:
    grad: np.ndarray  # d(-2 l)/d theta
    hessian: np.ndarray  # d2(-2 l)/d theta d theta'
    q: np.ndarray  # (m, p, p): X' V^-1 V_j V^-1 X, so that d Phi / d theta_j = Phi Q_j Phi


def _derivatives(ev: _Eval, prob: _Problem, jac: np.ndarray, curvature: np.ndarray) -> _Derivatives:
    """Analytic gradient and Hessian of -2 l in theta (see the section comment), per pattern."""
    m, p = len(jac), prob.n_coef
    jac_flat = jac.reshape(m, -1)
    b = ev.sinv @ jac[:, None] @ ev.sinv
    zbz = (b.reshape(m, -1) @ prob.zz).reshape(m, p + 1, p + 1)
    q = zbz[:, :p, :p]
    u = zbz[:, :p, :] @ _residual_coef(ev.beta)
    trace = np.tensordot(prob.count, b, axes=(0, 1))
    quad = (b @ (ev.weight @ ev.sinv)).sum(axis=1)
    hess = (2.0 * quad - trace).reshape(m, -1) @ jac_flat.T - 2.0 * u @ ev.phi @ u.T + curvature
    if prob.reml:
        hess -= (ev.phi @ q @ ev.phi).reshape(m, -1) @ q.reshape(m, -1).T
    return _Derivatives(jac_flat @ ev.grad_sigma.reshape(-1), 0.5 * (hess + hess.T), q)


class _Objective:
    """-2 l(theta) for one structure, with its analytic gradient and Hessian."""

    def __init__(self, struct: Structure, prob: _Problem):
        self.struct, self.prob = struct, prob

    def evaluate(self, theta: np.ndarray) -> _Eval | None:
        """The likelihood at theta; None where it is not defined (Sigma not PD or not finite)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ev = _evaluate(self.struct.sigma(theta, self.prob.n_visits), self.prob)
        return ev if ev is not None and np.isfinite(ev.m2ll) else None

    def derivatives(self, theta: np.ndarray, ev: _Eval) -> _Derivatives:
        """Gradient and Hessian at theta, given the likelihood there."""
        t = self.prob.n_visits
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            jac = _sigma_jacobian(self.struct, theta, t)
            return _derivatives(ev, self.prob, jac, _sigma_curvature(self.struct, theta, t, ev.grad_sigma))


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

    @functools.cached_property
    def w(self) -> np.ndarray:
        """Asymptotic covariance of theta, 2 H^-1 (H the Hessian of -2 l)."""
        return 2.0 * np.linalg.inv(self.hessian)


class _NotConverged(Exception):
    pass


def _newton_direction(d: _Derivatives) -> np.ndarray:
    """Newton step with the Hessian's eigenvalues taken in absolute value (floored), so that it descends
    also where the Hessian is not positive definite."""
    w, v = np.linalg.eigh(d.hessian)
    w = np.maximum(np.abs(w), 1e-8 * max(1.0, np.max(np.abs(w))))
    return v @ ((v.T @ d.grad) / w)


def _line_search(obj: _Objective, theta: np.ndarray, ev: _Eval, step: np.ndarray, slope: float,
                 min_step: float) -> tuple[np.ndarray, _Eval, float] | None:
    """Halve the step until -2 l decreases enough (Armijo, allowing rounding-level changes near the
    optimum): the new theta, its likelihood and the fraction of the step taken; None once the step is
    shorter than min_step in every coordinate."""
    slack = 1e-12 * max(1.0, abs(ev.m2ll))
    scale = 1.0
    while scale * np.max(np.abs(step)) >= min_step:
        trial = obj.evaluate(theta - scale * step)
        if trial is not None and trial.m2ll <= ev.m2ll - 1e-4 * scale * slope + slack:
            return theta - scale * step, trial, scale
        scale *= 0.5
    return None


def _newton(obj: _Objective, theta: np.ndarray, ev: _Eval, max_iter: int = 50, xtol: float = 1e-10,
            radius: float = 2.0) -> tuple[np.ndarray, _Eval, _Derivatives, int]:
    """Newton-Raphson with the analytic Hessian and a line search (SAS PROC MIXED also uses Newton-Raphson).

    Steps are capped at `radius` in any coordinate; the cap grows after a capped step is taken whole and
    shrinks to what the line search accepted otherwise. Stops when the step is below xtol, when the line
    search cannot move theta by xtol, or when steps stop shrinking while either they are tiny (the
    rounding floor) or -2 l hardly moves (a supremum on the boundary, such as a correlation going to 1)."""
    d = obj.derivatives(theta, ev)
    last, decrease = np.inf, np.inf
    for it in range(max_iter):
        if not (np.all(np.isfinite(d.grad)) and np.all(np.isfinite(d.hessian))):
            return theta, ev, d, it
        step = _newton_direction(d)
        size = np.max(np.abs(step))
        stalled = size > 0.5 * last and (size < 1e-6 or decrease < 1e-10 * max(1.0, abs(ev.m2ll)))
        if size < xtol or stalled:
            return theta, ev, d, it
        capped = size > radius
        step = step * min(1.0, radius / size)
        found = _line_search(obj, theta, ev, step, float(d.grad @ step), xtol)
        if found is None:
            return theta, ev, d, it
        decrease = ev.m2ll - found[1].m2ll
        theta, ev, scale = found
        if scale < 1.0:
            radius = scale * min(size, radius)
        elif capped:
            radius *= 4.0
        d = obj.derivatives(theta, ev)
        last = size
    return theta, ev, d, max_iter


def _fit_structure(struct: Structure, prob: _Problem, sigma0: np.ndarray, gtol: float = 1e-3) -> _Fit:
    """REML/ML for one structure by Newton-Raphson; raises _NotConverged when the likelihood is not
    defined at the start, the gradient does not vanish or the Hessian is not positive definite."""
    obj = _Objective(struct, prob)
    theta = struct.start(sigma0)
    ev = obj.evaluate(theta)
    if ev is None:
        raise _NotConverged(f"{struct.name}: objective not finite at the starting values")
    theta, ev, d, iterations = _newton(obj, theta, ev)
    grad_max = np.max(np.abs(d.grad))
    if not grad_max < gtol:
        raise _NotConverged(f"{struct.name}: Newton-Raphson stopped with max |gradient| {grad_max:.3g} "
                            f"after {iterations} iterations")
    eig = np.linalg.eigvalsh(d.hessian) if np.all(np.isfinite(d.hessian)) else np.array([np.nan])
    if not np.all(eig > 1e-8 * max(1.0, np.max(np.abs(eig)))):
        raise _NotConverged(f"{struct.name}: Hessian of -2 log-likelihood not positive definite")
    return _Fit(struct, theta, struct.sigma(theta, prob.n_visits), ev, d.hessian, ev.phi @ d.q @ ev.phi,
                f"converged in {iterations} Newton-Raphson iterations")


def _pairwise_cov(wide: np.ndarray) -> np.ndarray:
    """Covariance of the columns of a subjects x visits array over pairwise complete rows (NaN: not
    observed), NaN where fewer than two rows have both (pandas DataFrame.cov(min_periods=2))."""
    seen = (~np.isnan(wide)).astype(float)
    r = np.nan_to_num(wide)
    n = seen.T @ seen
    sums = r.T @ seen
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = (r.T @ r - sums * sums.T / n) / (n - 1.0)
    return np.where(n >= 2, cov, np.nan)


def _start_sigma(x: np.ndarray, y: np.ndarray, subj: np.ndarray, vis: np.ndarray, t: int) -> np.ndarray:
    """Pairwise covariance of OLS residuals by visit, made positive definite."""
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    wide = np.full((int(subj.max()) + 1, t), np.nan)
    wide[subj, vis] = resid
    s0 = _pairwise_cov(wide)
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
    values = s.dropna().unique()
    levels = list(order) if order is not None else (
        list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype)
        else sorted(values, key=_natural_key))
    present = set(values)
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


@dataclass
class _Design:
    """The analysis rows (coded) and, per row, the design matrix, response, subject and visit index."""

    frame: pd.DataFrame
    x_df: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    subj: np.ndarray
    vis: np.ndarray
    visit_levels: list
    categorical: list[str]
    numeric: list[str]


def _design(data: pd.DataFrame, formula: str, subject: str, visit: str, reference: dict | None,
            visit_order: list | None) -> _Design:
    """Design matrix and response of the complete rows; ValueError when the design is rank deficient."""
    df, categorical, numeric, visit_levels = _prepare(data, formula, subject, visit, reference, visit_order)
    y_df, x_df = patsy.dmatrices(formula, df, return_type="dataframe", NA_action="raise")
    x = x_df.to_numpy(dtype=float)
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise ValueError("design matrix is rank deficient (empty cells or collinear covariates)")
    return _Design(df, x_df, x, y_df.to_numpy(dtype=float)[:, 0], pd.factorize(df[subject], sort=True)[0],
                   df["_visit_pos"].to_numpy(), visit_levels, categorical, numeric)


# ---------------------------------------------------------------------------------------------
# Result.
# ---------------------------------------------------------------------------------------------

def _satterthwaite(rows: np.ndarray, fit: _Fit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimates, SEs and Satterthwaite df of rows @ beta: df = 2 (c' Phi c)^2 / (g' W g), W = 2 H^-1."""
    var = np.einsum("np,pq,nq->n", rows, fit.ev.phi, rows)
    g = np.einsum("np,mpq,nq->nm", rows, fit.dphi, rows)
    denom = np.einsum("nm,mk,nk->n", g, fit.w, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, 2.0 * var ** 2 / denom, np.inf)
    return rows @ fit.ev.beta, np.sqrt(var), df


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
            return tuple(float(v[0]) for v in _satterthwaite(arr[None], self._fit))
        return _satterthwaite(arr, self._fit)

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
    est, se, df = _satterthwaite(np.eye(len(names)), fit)
    table = pd.DataFrame({"estimate": est, "se": se, "df": df}, index=pd.Index(names, name="term"))
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
    d = _design(data, formula, subject, visit, reference, visit_order)
    t = len(d.visit_levels)
    prob = _build_problem(d.x, d.y, d.subj, d.vis, t, reml)
    fit, reason = _fit_with_fallback(prob, _start_sigma(d.x, d.y, d.subj, d.vis, t), covariance)
    return MMRMResult(
        coef=_coef_table(fit, list(d.x_df.columns)),
        covariance_matrix=pd.DataFrame(fit.sigma, index=d.visit_levels, columns=d.visit_levels),
        minus2_loglik=fit.ev.m2ll,
        n_obs=len(d.y),
        n_subjects=int(d.subj.max()) + 1,
        converged=True,
        covariance=fit.struct.name,
        covariance_requested=covariance,
        fallback_reason=reason,
        reml=reml,
        formula=formula,
        theta=fit.theta,
        _fit=fit,
        _design_info=d.x_df.design_info,
        _levels={v: list(d.frame[v].cat.categories) for v in d.categorical},
        _numeric_means={v: float(d.frame[v].mean()) for v in d.numeric},
    )
