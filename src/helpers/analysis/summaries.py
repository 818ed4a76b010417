"""Descriptive statistics shared by every table: one definition of n, mean, SD, median and quartiles."""
from __future__ import annotations

import numpy as np
import pandas as pd


def describe(values: pd.Series) -> dict:
    """n, mean, SD (n - 1), median, Q1 and Q3 of the non-missing values.

    Quartiles are numpy's default (linear interpolation; Hyndman and Fan type 7, R's default);
    the SD divides by n - 1.
    """
    v = pd.Series(values).astype("Float64").dropna().to_numpy(dtype=float)
    if not len(v):
        return {"n": 0, "mean": np.nan, "sd": np.nan, "median": np.nan, "q1": np.nan, "q3": np.nan}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"n": len(v), "mean": v.mean(), "sd": v.std(ddof=1) if len(v) > 1 else np.nan,
            "median": med, "q1": q1, "q3": q3}
