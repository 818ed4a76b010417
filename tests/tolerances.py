"""Tolerances for comparing statistics with stored references, each in the units of its quantity.

The BLAS/LAPACK kernel (CPU, OPENBLAS_CORETYPE), numpy's SIMD loops and summation order move the last
digits of a float64 result: about 1e-13 in the endpoint's units on this book's data, and a residue near zero
keeps no relative digit at all. A tolerance sits far above that and far below the printed precision, so a
wrong printed digit still fails.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

# Estimates, CI limits, SEs, changes, means, SDs, quantiles, scores, deltas in the endpoint's units
# (umol/L, g/L, U/L, MELD points, ratio, probability): printed to at most 2 decimals.
ENDPOINT_UNITS = 1e-6
# Rubin's within, between and total variance, in squared endpoint units.
VARIANCE = 1e-6
# Degrees of freedom (t, Satterthwaite, Barnard-Rubin): printed to 1 decimal.
DF = 1e-6
# P values: printed to 3 decimals or as "<0.001".
P_VALUE = 1e-9
# Fractions in [0, 1] (fraction of missing information, Clopper-Pearson/Wilson proportions): printed as %.
FRACTION = 1e-9
# Percentages: printed to 1 decimal.
PERCENT = 1e-6
# Counts, indices, ranks and sums of ranks, grid ends: integers (or halves) with no rounding in them.
EXACT = 0.0

COLUMNS: dict[str, float] = {
    **dict.fromkeys(["estimate", "lower", "upper", "se", "CHG", "SCORE", "delta", "mean", "sd", "median", "q1", "q3",
                     "ESTIMATE", "LCL", "UCL", "SE"], ENDPOINT_UNITS),
    # baseline and randomization tables: n, mean, %, SMD, proportion, each in its own units
    "value": ENDPOINT_UNITS,
    **dict.fromkeys(["within", "between", "total"], VARIANCE),
    "df": DF,
    **dict.fromkeys(["p_value", "p_holm", "PVALUE"], P_VALUE),
    **dict.fromkeys(["fmi_lambda", "proportion"], FRACTION),
    **dict.fromkeys(["PCT", "pct"], PERCENT),
    **dict.fromkeys(["n", "N", "m", "IMP", "U", "n_imputed", "n_experimental", "n_control", "n_assessed", "n_class_a",
                     "EVENT_DAY", "EVENTS", "N_PARTICIPANTS", "N_EVENTS", "AVISITN", "grid_max", "seq", "block",
                     "block_size"], EXACT),
}


def assert_frame_close(new: pd.DataFrame, ref: pd.DataFrame, label: str = "",
                       tolerances: Mapping[str, float] = COLUMNS, significant_digits: int | None = None) -> None:
    """Same columns, rows, missing cells and text; each numeric column within its absolute tolerance.

    ``significant_digits``: the reference is printed to that many (``%.10g``: 10), so one unit in its last
    digit is added to the tolerance. A numeric column without a tolerance is an error, not a default."""
    assert list(new.columns) == list(ref.columns), f"{label}: columns {list(new.columns)} != {list(ref.columns)}"
    assert len(new) == len(ref), f"{label}: {len(new)} rows != {len(ref)}"
    for c in ref.columns:
        a, b = new[c].reset_index(drop=True), ref[c].reset_index(drop=True)
        missing = b.isna().to_numpy()
        moved = np.flatnonzero(a.isna().to_numpy() != missing)
        assert not moved.size, f"{label}: {c} missing in different rows, first row {moved[0]}: {a[moved[0]]!r} vs {b[moved[0]]!r}"
        if missing.all():
            continue
        numeric = pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b)
        if not numeric:
            assert a[~missing].tolist() == b[~missing].tolist(), f"{label}: text column {c} differs"
            continue
        if c not in tolerances:
            raise KeyError(f"{label}: no tolerance for numeric column {c!r}; name its quantity in tests/tolerances.py")
        x, y = a.to_numpy(float)[~missing], b.to_numpy(float)[~missing]
        tol = tolerances[c] + (10.0 ** (1 - significant_digits) * np.abs(y) if significant_digits else 0.0)
        diff, tol = np.abs(x - y), np.broadcast_to(tol, y.shape)
        bad = np.flatnonzero(~(diff <= tol))
        if bad.size:
            i = bad[np.argmax(diff[bad])]
            raise AssertionError(f"{label}: {c} differs in {bad.size} of {len(y)} rows; worst {float(x[i])!r} vs "
                                 f"reference {float(y[i])!r} (|diff| {diff[i]:.3g} > tolerance {tol[i]:.3g})")
