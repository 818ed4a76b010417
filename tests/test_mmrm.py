"""MMRM against SAS PROC MIXED (fev_data, TYPE=UN, REML, DDFM=SATTERTHWAITE) and exact special cases."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import linalg

from helpers import paths
from helpers.analysis import mmrm
from helpers.analysis.mmrm import MMRMFallbackWarning, fit_mmrm

REF_DIR = paths.ROOT / "tests" / "fixtures" / "mmrm-fev"
FORMULA = "FEV1 ~ ARMCD * AVISIT + RACE + SEX"
REL = 1e-3
TINY = 1e-3
DF_TOL = 1.0


def sas_name(term: str) -> str:
    """patsy 'ARMCD[T.TRT]:AVISIT[T.VIS2]' -> the reference JSON's 'ARMCD[TRT]:AVISIT[VIS2]'."""
    return term.replace("[T.", "[")


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((REF_DIR / "expected_sas_reml.json").read_text())


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(REF_DIR / "fev_data.csv", na_values=["NA"])


@pytest.fixture(scope="module")
def fit(fev, expected):
    return fit_mmrm(fev, FORMULA, subject="USUBJID", visit="AVISIT", covariance="us",
                    reference=expected["reference_levels"])


def _close(actual: float, wanted: float) -> bool:
    return actual == pytest.approx(wanted, rel=REL, abs=TINY)


# ---------------------------------------------------------------- SAS reference


def test_counts(fit, fev, expected):
    assert fit.n_obs == expected["observations_used"] == 537
    assert fit.n_subjects == fev.loc[fev["FEV1"].notna(), "USUBJID"].nunique()
    assert fit.covariance == fit.covariance_requested == "us"
    assert fit.fallback_reason is None and fit.converged


def test_minus2_reml_loglik(fit, expected):
    assert fit.minus2_loglik == pytest.approx(expected["minus2_reml_loglik"], abs=1e-2)


def test_fixed_effect_terms_match_sas(fit, expected):
    assert sorted(sas_name(t) for t in fit.coef.index) == sorted(expected["fixed_effects"])


@pytest.mark.parametrize("quantity", ["estimate", "se", "df"])
def test_fixed_effects(fit, expected, quantity):
    bad = {}
    for term, row in fit.coef.iterrows():
        want = expected["fixed_effects"][sas_name(term)][quantity]
        ok = abs(row[quantity] - want) <= DF_TOL if quantity == "df" else _close(row[quantity], want)
        if not ok:
            bad[term] = (row[quantity], want)
    assert not bad, f"{quantity} differs from SAS: {bad}"


def test_fixed_effect_p_values_follow_t(fit):
    from scipy import stats

    t = fit.coef["estimate"] / fit.coef["se"]
    np.testing.assert_allclose(fit.coef["t"], t)
    np.testing.assert_allclose(fit.coef["p_value"], 2 * stats.t.sf(np.abs(t), fit.coef["df"]))


def test_covariance_matrix(fit, expected):
    """Entry-wise relative 1e-3, except entries near zero, which are held to 1e-4 of sd_i * sd_j.

    SAS stops iterating slightly short of the REML optimum (its printed Sigma gives a -2 l about 6e-6
    above ours), which moves the near-zero VIS3/VIS4 covariance (0.90) by 0.002 but nothing larger."""
    cov = expected["covariance_unstructured"]
    want = np.array(cov["matrix"])
    got = fit.covariance_matrix.loc[cov["order"], cov["order"]].to_numpy()
    scale = np.sqrt(np.outer(np.diag(want), np.diag(want)))
    ok = (np.abs(got - want) <= REL * np.abs(want)) | (np.abs(got - want) <= 1e-4 * scale)
    assert ok.all(), f"covariance differs from SAS at {np.argwhere(~ok).tolist()}:\n{got}\n{want}"
    np.testing.assert_allclose(np.diag(got), np.diag(want), rtol=REL)


def test_lsmeans(fit, expected):
    table = fit.lsmeans("ARMCD", by="AVISIT").set_index(["AVISIT", "ARMCD"])
    assert len(table) == 8
    for visit, arms in expected["lsmeans"].items():
        if visit in ("columns", "note"):
            continue
        for arm, (est, se, df) in arms.items():
            row = table.loc[(visit, arm)]
            assert _close(row["estimate"], est), (visit, arm, row["estimate"], est)
            assert _close(row["se"], se), (visit, arm, row["se"], se)
            assert abs(row["df"] - df) <= DF_TOL, (visit, arm, row["df"], df)
            assert row["lower"] < row["estimate"] < row["upper"]


@pytest.mark.parametrize("quantity", ["estimate", "se", "df", "lower", "upper", "p"])
def test_lsmean_differences(fit, expected, quantity):
    table = fit.lsmean_differences("ARMCD", by="AVISIT").set_index("AVISIT")
    assert set(table["contrast"]) == {"TRT - PBO"}
    exact_p = expected.get("p_note", "")
    for visit, want in expected["lsmean_differences_TRT_minus_PBO"].items():
        got = table.loc[visit, "p_value" if quantity == "p" else quantity]
        if quantity == "df":
            assert abs(got - want["df"]) <= DF_TOL, (visit, got, want["df"])
        elif quantity == "p":
            if visit in exact_p:
                assert got < want["p"], (visit, got)
            else:
                assert got == pytest.approx(want["p"], abs=1e-4), (visit, got, want["p"])
        else:
            assert _close(got, want[quantity]), (visit, quantity, got, want[quantity])


# ---------------------------------------------------------------- exact special cases


def _one_visit_data(seed: int = 7, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 3 == 0, "PBO", np.where(np.arange(n) % 3 == 1, "LOW", "HIGH"))
    base = rng.normal(10, 2, n)
    y = 2 + 1.5 * (arm == "HIGH") + 0.7 * base + rng.normal(0, 1.3, n)
    return pd.DataFrame({"id": [f"P{i:03d}" for i in range(n)], "visit": "WEEK12", "arm": arm,
                         "base": base, "chg": y})


@pytest.mark.parametrize("reml", [True, False])
def test_one_visit_reduces_to_ols(reml):
    data = _one_visit_data()
    res = fit_mmrm(data, "chg ~ arm + base", "id", "visit", reml=reml, reference={"arm": "PBO"})
    data = data.assign(arm=pd.Categorical(data["arm"], categories=["PBO", "HIGH", "LOW"]))
    ols = smf.ols("chg ~ arm + base", data).fit()
    assert list(res.coef.index) == list(ols.params.index)
    np.testing.assert_allclose(res.coef["estimate"], ols.params, rtol=1e-8)
    if reml:
        np.testing.assert_allclose(res.coef["se"], ols.bse, rtol=1e-6)
        np.testing.assert_allclose(res.coef["df"], ols.df_resid, rtol=1e-5)
        np.testing.assert_allclose(res.coef["p_value"], ols.pvalues, rtol=1e-4)
        assert res.covariance_matrix.iloc[0, 0] == pytest.approx(ols.scale, rel=1e-7)
    else:
        assert res.minus2_loglik == pytest.approx(-2 * ols.llf, rel=1e-10)
        assert res.covariance_matrix.iloc[0, 0] == pytest.approx(ols.ssr / ols.nobs, rel=1e-7)


def test_compound_symmetry_equals_random_intercept():
    rng = np.random.default_rng(20240501)
    n, t = 40, 3
    subj = np.repeat(np.arange(n), t)
    vis = np.tile(np.arange(t), n)
    arm = np.where(subj % 2 == 0, "A", "B")
    x = rng.normal(size=n)[subj]
    y = 1 + 0.5 * (arm == "B") + 0.3 * vis + 0.8 * x + rng.normal(scale=1.5, size=n)[subj] + rng.normal(size=n * t)
    data = pd.DataFrame({"id": [f"S{i:02d}" for i in subj], "visit": [f"V{v + 1}" for v in vis],
                         "arm": arm, "x": x, "y": y})
    res = fit_mmrm(data, "y ~ arm + visit + x", "id", "visit", covariance="cs")
    lme = smf.mixedlm("y ~ arm + visit + x", data, groups=data["id"]).fit(reml=True)
    np.testing.assert_allclose(res.coef["estimate"], lme.fe_params, rtol=1e-5)
    np.testing.assert_allclose(res.coef["se"], lme.bse_fe, rtol=1e-4)
    assert res.minus2_loglik == pytest.approx(-2 * lme.llf, abs=1e-5)
    cov = res.covariance_matrix.to_numpy()
    assert cov[0, 1] == pytest.approx(float(lme.cov_re.iloc[0, 0]), rel=1e-4)
    assert cov[0, 0] == pytest.approx(float(lme.cov_re.iloc[0, 0]) + lme.scale, rel=1e-4)


def test_difference_at_reference_visit_is_arm_coefficient(fit):
    diff = fit.lsmean_differences("ARMCD", by="AVISIT").set_index("AVISIT")
    arm = fit.coef.loc["ARMCD[T.TRT]"]
    for col in ("estimate", "se", "df", "p_value"):
        assert diff.loc["VIS1", col] == pytest.approx(arm[col], rel=1e-10)
    vis2 = fit.coef.loc["ARMCD[T.TRT]"] + fit.coef.loc["ARMCD[T.TRT]:AVISIT[T.VIS2]"]
    assert diff.loc["VIS2", "estimate"] == pytest.approx(vis2["estimate"], rel=1e-10)
    assert diff.loc["VIS2", "estimate"] != pytest.approx(arm["estimate"], rel=1e-3)


def test_contrast_matches_coefficient_table(fit):
    names = list(fit.coef.index)
    L = np.zeros((2, len(names)))
    L[0, names.index("SEX[T.Female]")] = 1
    L[1, names.index("RACE[T.White]")] = 1
    L[1, names.index("RACE[T.Black or African American]")] = -1
    est, se, df = fit.contrast(L)
    assert (est[0], se[0], df[0]) == pytest.approx(tuple(fit.coef.loc["SEX[T.Female]", ["estimate", "se", "df"]]))
    white, black = fit.coef.loc["RACE[T.White]", "estimate"], fit.coef.loc["RACE[T.Black or African American]", "estimate"]
    assert est[1] == pytest.approx(white - black)
    assert 100 < df[1] < 250


# ---------------------------------------------------------------- fallback


def test_forced_failure_falls_back_with_warning(fev, expected, monkeypatch):
    broken = mmrm.Structure("us", mmrm.STRUCTURES["us"].n_params,
                            lambda theta, t: -np.eye(t), mmrm.STRUCTURES["us"].start)
    monkeypatch.setitem(mmrm.STRUCTURES, "us", broken)
    with pytest.warns(MMRMFallbackWarning, match="'us'"):
        res = fit_mmrm(fev, FORMULA, "USUBJID", "AVISIT", reference=expected["reference_levels"])
    assert res.covariance_requested == "us"
    assert res.covariance == "toeph"
    assert res.fallback_reason.startswith("us:")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        direct = fit_mmrm(fev, FORMULA, "USUBJID", "AVISIT", covariance="toeph",
                          reference=expected["reference_levels"])
    assert res.minus2_loglik == pytest.approx(direct.minus2_loglik, abs=1e-8)


def test_too_few_subjects_for_unstructured_falls_back():
    """Four subjects, six visits: the unstructured REML likelihood is unbounded (Sigma goes singular)."""
    rng = np.random.default_rng(1)
    n, t = 4, 6
    subj, vis = np.repeat(np.arange(n), t), np.tile(np.arange(t), n)
    data = pd.DataFrame({"id": subj.astype(str), "visit": [f"V{v + 1}" for v in vis],
                         "y": rng.normal(size=n * t) + 0.2 * vis})
    with pytest.warns(MMRMFallbackWarning):
        res = fit_mmrm(data, "y ~ visit", "id", "visit", covariance="us")
    assert res.covariance != "us" and res.covariance in mmrm.FALLBACK_ORDER
    assert "us:" in res.fallback_reason


# ---------------------------------------------------------------- structures, determinism, input handling


@pytest.fixture(scope="module")
def structure_fits(fev, expected):
    return {name: fit_mmrm(fev, FORMULA, "USUBJID", "AVISIT", covariance=name,
                           reference=expected["reference_levels"]) for name in mmrm.FALLBACK_ORDER}


def test_nested_structures_order_the_likelihood(structure_fits):
    m2 = {k: v.minus2_loglik for k, v in structure_fits.items()}
    assert all(v.covariance == k and v.fallback_reason is None for k, v in structure_fits.items())
    assert m2["us"] <= m2["toeph"] + 1e-6 <= m2["ar1h"] + 2e-6 <= m2["ar1"] + 3e-6
    assert m2["toeph"] <= m2["cs"] + 1e-6
    assert m2["us"] < m2["cs"] - 1.0


def test_structure_shapes(structure_fits):
    ar1 = structure_fits["ar1"].covariance_matrix.to_numpy()
    rho = ar1[0, 1] / ar1[0, 0]
    np.testing.assert_allclose(ar1[0], ar1[0, 0] * rho ** np.arange(4), rtol=1e-10)
    cs = structure_fits["cs"].covariance_matrix.to_numpy()
    np.testing.assert_allclose(cs[np.triu_indices(4, 1)], cs[0, 1], rtol=1e-10)
    toeph = structure_fits["toeph"].covariance_matrix.to_numpy()
    sd = np.sqrt(np.diag(toeph))
    corr = toeph / np.outer(sd, sd)
    np.testing.assert_allclose(np.diag(corr, 1), corr[0, 1], rtol=1e-8)
    assert np.ptp(sd) > 1.0


def test_deterministic(fev, expected, fit):
    again = fit_mmrm(fev, FORMULA, "USUBJID", "AVISIT", reference=expected["reference_levels"])
    pd.testing.assert_frame_equal(again.coef, fit.coef, check_exact=True)
    assert again.minus2_loglik == fit.minus2_loglik


def test_row_order_does_not_matter(fev, expected, fit):
    shuffled = fev.sample(frac=1.0, random_state=3)
    res = fit_mmrm(shuffled, FORMULA, "USUBJID", "AVISIT", reference=expected["reference_levels"])
    np.testing.assert_allclose(res.coef.to_numpy(), fit.coef.to_numpy(), rtol=1e-7)


def test_bad_reference_level_is_rejected(fev):
    with pytest.raises(ValueError, match="reference level"):
        fit_mmrm(fev, FORMULA, "USUBJID", "AVISIT", reference={"ARMCD": "nope"})


def test_visit_order_orders_sigma_not_the_fit(fev, expected, fit):
    order = ["VIS4", "VIS3", "VIS2", "VIS1"]
    res = fit_mmrm(fev, FORMULA, "USUBJID", "AVISIT", reference=expected["reference_levels"], visit_order=order)
    assert list(res.covariance_matrix.index) == order
    assert res.minus2_loglik == pytest.approx(fit.minus2_loglik, abs=1e-6)
    np.testing.assert_allclose(res.covariance_matrix.loc[order, order].to_numpy(),
                               fit.covariance_matrix.loc[order, order].to_numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="visit_order"):
        fit_mmrm(fev, FORMULA, "USUBJID", "AVISIT", visit_order=["VIS1", "VIS2"])


# ---------------------------------------------------------------- the computation: likelihood and derivatives


@pytest.fixture(scope="module")
def design(fev, expected):
    return mmrm._design(fev, FORMULA, "USUBJID", "AVISIT", expected["reference_levels"], None)


def _problem(design, reml: bool = True):
    return mmrm._build_problem(design.x, design.y, design.subj, design.vis, len(design.visit_levels), reml)


def _theta(design, name: str, seed: int = 0) -> np.ndarray:
    """A point away from the optimum: the structure's start, moved at random."""
    sigma0 = mmrm._start_sigma(design.x, design.y, design.subj, design.vis, len(design.visit_levels))
    start = mmrm.STRUCTURES[name].start(sigma0)
    return start + 0.1 * np.random.default_rng(seed).normal(size=len(start))


def _dense_m2ll(design, sigma: np.ndarray, reml: bool) -> tuple[float, np.ndarray]:
    """-2 l and beta from the N x N block-diagonal V, subject by subject (no patterns, no shortcuts)."""
    blocks = [sigma[np.ix_(design.vis[design.subj == i], design.vis[design.subj == i])]
              for i in range(design.subj.max() + 1)]
    v_inv = np.linalg.inv(linalg.block_diag(*blocks))
    x, y = design.x, design.y
    xtvx = x.T @ v_inv @ x
    beta = np.linalg.solve(xtvx, x.T @ v_inv @ y)
    r = y - x @ beta
    n, p = x.shape
    m2ll = np.linalg.slogdet(linalg.block_diag(*blocks))[1] + r @ v_inv @ r
    m2ll += (n - p) * np.log(2 * np.pi) + np.linalg.slogdet(xtvx)[1] if reml else n * np.log(2 * np.pi)
    return m2ll, beta


@pytest.mark.parametrize("reml", [True, False])
def test_pattern_sums_give_the_dense_likelihood(design, reml):
    """Grouping subjects by missingness pattern (fev_data has intermittent gaps) changes nothing."""
    sigma = mmrm.STRUCTURES["us"].sigma(_theta(design, "us"), 4)
    ev = mmrm._evaluate(sigma, _problem(design, reml))
    m2ll, beta = _dense_m2ll(design, sigma, reml)
    assert ev.m2ll == pytest.approx(m2ll, rel=1e-12)
    np.testing.assert_allclose(ev.beta, beta, rtol=1e-9, atol=1e-9)  # atol in FEV1 units: a coefficient may be near 0


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("name", mmrm.FALLBACK_ORDER)
def test_analytic_derivatives_match_finite_differences(design, name, reml):
    """Gradient and Hessian of -2 l and d Phi / d theta against central differences."""
    obj = mmrm._Objective(mmrm.STRUCTURES[name], _problem(design, reml))
    theta, h = _theta(design, name), 1e-5
    d = obj.derivatives(theta, obj.evaluate(theta))
    shifted = [(obj.evaluate(theta + e), obj.evaluate(theta - e)) for e in h * np.eye(len(theta))]
    grad = np.array([(up.m2ll - down.m2ll) / (2 * h) for up, down in shifted])
    hess = np.array([(obj.derivatives(theta + e, up).grad - obj.derivatives(theta - e, down).grad) / (2 * h)
                     for e, (up, down) in zip(h * np.eye(len(theta)), shifted)])
    dphi = np.array([(up.phi - down.phi) / (2 * h) for up, down in shifted])
    ev = obj.evaluate(theta)
    np.testing.assert_allclose(d.grad, grad, atol=1e-5 * np.abs(grad).max())
    np.testing.assert_allclose(d.hessian, hess, atol=1e-7 * np.abs(hess).max())
    np.testing.assert_allclose(ev.phi @ d.q @ ev.phi, dphi, atol=1e-7 * np.abs(dphi).max())


def test_generic_derivatives_match_closed_form(design):
    """The complex-step Jacobian and differenced curvature (used by the other structures) agree with
    the unstructured closed forms."""
    closed = mmrm.STRUCTURES["us"]
    generic = mmrm.Structure("us", closed.n_params, closed.sigma, closed.start)
    theta = _theta(design, "us")
    g = np.random.default_rng(1).normal(size=(4, 4))
    g = g + g.T
    np.testing.assert_allclose(mmrm._sigma_jacobian(generic, theta, 4), mmrm._sigma_jacobian(closed, theta, 4),
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(mmrm._sigma_curvature(generic, theta, 4, g),
                               mmrm._sigma_curvature(closed, theta, 4, g), atol=1e-8)


def test_fit_is_at_the_optimum(fit, design):
    """Newton-Raphson ends where the gradient vanishes to rounding, with a positive definite Hessian."""
    obj = mmrm._Objective(mmrm.STRUCTURES["us"], _problem(design))
    d = obj.derivatives(fit.theta, obj.evaluate(fit.theta))
    assert np.abs(d.grad).max() < 1e-8
    assert np.linalg.eigvalsh(d.hessian).min() > 0
    np.testing.assert_allclose(fit._fit.hessian, d.hessian, rtol=1e-12)


def test_start_covariance_is_the_pairwise_one():
    rng = np.random.default_rng(3)
    wide = rng.normal(size=(30, 5))
    wide[rng.random(wide.shape) < 0.3] = np.nan
    wide[:, 4] = np.nan
    wide[0, 4] = 1.0
    want = pd.DataFrame(wide).cov(min_periods=2).to_numpy()
    np.testing.assert_allclose(mmrm._pairwise_cov(wide), want, rtol=1e-12, atol=1e-14)
