"""Baseline balance between the arms: absolute standardized mean differences, each set against the range
that re-randomizing the same participants gives by chance (descriptive; CONSORT 2010 item 15 asks for no tests).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis.baseline import baseline_variables
from helpers.trial import Trial


def _group_moments(values: np.ndarray, groups: np.ndarray, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``values`` within each row of the 0/1 matrix ``groups`` (missing values left out).

    Binary variables use p(1 - p); continuous ones the sample variance (n - 1).
    """
    ok = ~np.isnan(values)
    x = np.where(ok, values, 0.0)
    g = groups * ok
    n = g.sum(axis=-1)
    mean = (g * x).sum(axis=-1) / n
    if binary:
        return mean, mean * (1 - mean)
    ss = (g * (x - mean[..., None]) ** 2).sum(axis=-1)
    return mean, ss / (n - 1)


def smd(values: np.ndarray, treated: np.ndarray, binary: bool = False) -> np.ndarray:
    """Standardized mean difference treated - control (Austin, Stat Med 2009;28:3083-3107).

    Continuous: (mean1 - mean0) / sqrt((s1^2 + s0^2) / 2); binary: (p1 - p0) / sqrt((p1(1-p1) +
    p0(1-p0)) / 2). ``treated`` is 0/1 per participant, or a matrix of such rows (one SMD per row).
    Zero difference with zero spread gives 0.
    """
    values = np.asarray(values, dtype=float)
    treated = np.asarray(treated, dtype=float)
    m1, v1 = _group_moments(values, treated, binary)
    m0, v0 = _group_moments(values, 1 - treated, binary)
    diff, sd = m1 - m0, np.sqrt((v1 + v0) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, diff / sd, np.where(diff == 0, 0.0, np.inf))


def balance_rows(adsl: pd.DataFrame, variables: list[dict]) -> list[tuple[str, str, np.ndarray, bool]]:
    """(variable label, level, values, binary) per row of the balance table: one per continuous
    variable, one per level of a categorical one (an indicator, missing kept missing)."""
    rows = []
    for v in variables:
        col = adsl[v["column"]]
        if v["type"] == "continuous":
            rows.append((v["label"], "", col.astype("Float64").to_numpy(dtype=float, na_value=np.nan), False))
        else:
            miss = col.isna().to_numpy()
            for level in v["levels"]:
                ind = np.where(miss, np.nan, col.astype(str).eq(str(level)).to_numpy(dtype=float))
                rows.append((v["label"], str(level), ind, True))
    return rows


def baseline_balance(adsl: pd.DataFrame, trial: Trial, variables: list[dict] | None = None, n_perm: int = 2000,
                     seed: int | None = None) -> pd.DataFrame:
    """Absolute SMD of each baseline row, each experimental arm vs control, with the range chance gives.

    The reference is the re-randomization distribution: the observed participants' arm labels are
    permuted ``n_perm`` times (arm sizes kept, seeded; by default with the trial file's randomization
    seed) and ``chance_p95`` is the 95th percentile of |SMD| under those permutations, i.e. what
    randomization alone produces at this N per arm. Rows default to Table 1's (``baseline_variables``).
    Descriptive only: no p-values (CONSORT 2010, item 15).
    """
    variables = baseline_variables(trial, adsl) if variables is None else variables
    stated = trial.randomization.seed
    rng = np.random.default_rng((1 if stated is None else stated) if seed is None else seed)
    rows = balance_rows(adsl, variables)
    arms = adsl["ARMCD"].astype(str).to_numpy()
    control = trial.control
    out = []
    for arm in trial.experimental_arms:
        keep = np.isin(arms, [arm.code, control.code])
        treated = (arms[keep] == arm.code).astype(float)
        perms = np.array([rng.permutation(treated) for _ in range(n_perm)])
        for label, level, values, binary in rows:
            observed = abs(float(smd(values[keep], treated, binary)))
            null = np.abs(smd(values[keep], perms, binary))
            out.append({"comparison": f"{arm.label} vs {control.label}", "variable": label,
                        "level": level, "abs_smd": observed, "chance_p95": float(np.nanpercentile(null, 95))})
    return pd.DataFrame(out)
