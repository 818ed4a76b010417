"""The delta-adjusted tipping point: how much worse than missing at random the imputed values of the
non-control arms must be before the conclusion of the multiple-imputation analysis changes."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize

from helpers.analysis.imputation import pooled_ancova, visit_design, worse_sign
from helpers.trial import Trial

FAVOURS_EXPERIMENTAL = "favours experimental"
FAVOURS_CONTROL = "favours control"
NO_DIFFERENCE = "no significant difference"


def conclusion(estimate: float, p_value: float, worse_sign: int, alpha: float) -> str:
    """'favours experimental', 'favours control' or 'no significant difference' at two-sided level alpha (the
    trial's, ``Trial.alpha``)."""
    if not p_value < alpha:
        return NO_DIFFERENCE
    return FAVOURS_CONTROL if np.sign(estimate) == worse_sign else FAVOURS_EXPERIMENTAL


def default_delta_grid(completed: pd.DataFrame, trial: Trial, visit: str | None = None, points: int = 20) -> np.ndarray:
    """0 to about 4 SD of the observed change at the visit, in a round step (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5 x 10^k)."""
    visit = visit or trial.last_visit.label
    d = completed[(completed["AVISIT"] == visit) & ~completed["IMPUTED"] & (completed["IMP"] == completed["IMP"].min())]
    span = 4 * float(d["CHG"].std())
    if not np.isfinite(span) or span <= 0:
        span = 1.0
    raw = span / points
    k = 10.0 ** np.floor(np.log10(raw))
    step = next(s * k for s in (1, 2, 2.5, 5, 10) if s * k >= raw)
    return np.round(np.arange(points + 1) * step, 10)


def tipping_grid(completed: pd.DataFrame, trial: Trial, paramcd: str, grid=None, visit: str | None = None) -> pd.DataFrame:
    """The delta-adjusted MI result over a grid of deltas (worse direction, non-control arms' imputed
    values only), with the conclusion at each at the trial's alpha (CIs at 1 - alpha). The design is built
    once for the whole grid."""
    sign, alpha = worse_sign(trial, paramcd), trial.alpha
    grid = default_delta_grid(completed, trial, visit) if grid is None else np.asarray(grid, dtype=float)
    design = visit_design(completed, trial, visit)
    out = pd.concat([pooled_ancova(design, delta, sign, 1 - alpha) for delta in grid], ignore_index=True)
    out["conclusion"] = [conclusion(e, p, sign, alpha) for e, p in zip(out["estimate"], out["p_value"])]
    return out


def tipping_point(grid_table: pd.DataFrame, completed: pd.DataFrame, trial: Trial, paramcd: str, arm: str,
                  visit: str | None = None) -> dict:
    """The smallest delta at which the conclusion for ``arm`` differs from that at delta = 0: located
    in the grid, then refined by root finding on p(delta) = alpha (the trial's; Brent's method). Keys: delta
    (nan if not reached in the grid), from_conclusion, to_conclusion, grid_max, and the result at delta."""
    sign, alpha = worse_sign(trial, paramcd), trial.alpha
    g = grid_table[grid_table["TRT01P"] == arm].sort_values("delta").reset_index(drop=True)
    start = g["conclusion"].iloc[0]
    changed = g.index[g["conclusion"] != start]
    info = {"from_conclusion": start, "grid_max": float(g["delta"].max()), "to_conclusion": "", "delta": np.nan}
    if not len(changed):
        return info
    k = changed[0]
    design = visit_design(completed, trial, visit)

    def p_minus_alpha(delta: float) -> float:
        return pooled_ancova(design, delta, sign, 1 - alpha).set_index("TRT01P").loc[arm, "p_value"] - alpha

    lo, hi = g.loc[k - 1, "delta"], g.loc[k, "delta"]
    delta = optimize.brentq(p_minus_alpha, lo, hi, xtol=1e-6) if np.sign(p_minus_alpha(lo)) != np.sign(p_minus_alpha(hi)) else hi
    at = pooled_ancova(design, delta, sign, 1 - alpha).set_index("TRT01P").loc[arm]
    return info | {"delta": float(delta), "to_conclusion": g.loc[k, "conclusion"]} | at[["estimate", "lower", "upper", "p_value"]].to_dict()
