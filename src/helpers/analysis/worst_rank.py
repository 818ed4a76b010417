"""The worst-rank composite: death (and each intercurrent event that the primary time-to-event endpoint counts as an
event) before the last visit ranks below every observed change; arms compared by the win probability."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from helpers.analysis.imputation import worse_sign
from helpers.data.adam import intercurrent_columns
from helpers.trial import Trial, Visit

OBSERVED, DEATH, MISSING = "observed", "death", "missing"


def ranked_events(trial: Trial) -> list[str]:
    """The intercurrent events ranked with the deaths: those the lead time-to-event endpoint counts as events."""
    return [e.code for e in trial.intercurrent_events if trial.counts_as_event(e.code)]


def categories(trial: Trial) -> list[str]:
    """Worst-rank categories: observed, death, each ranked intercurrent event (its code in lower case), missing."""
    return [OBSERVED, DEATH] + [c.lower() for c in ranked_events(trial)] + [MISSING]


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days + 1


def worst_rank_scores(wide: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str,
                      visit: Visit | None = None) -> pd.DataFrame:
    """Per participant of ``change_wide``: the category (``categories``) and a score where larger is worse. Observed
    changes at the visit (default: the last) keep their order (sign-adjusted so larger is worse); a participant
    without a value at the visit who died by the end of its window (or had an intercurrent event the primary
    time-to-event endpoint counts as an event, ``ranked_events``) scores worse than any observed change, earlier
    events (days from randomization) worse; the others are missing (score nan)."""
    visit = visit or trial.last_visit
    sign = worse_sign(trial, paramcd)
    sl = adsl.set_index("USUBJID").loc[wide["USUBJID"]]
    window_end = visit.closes_on(trial.day_one(sl["TRTSDT"], sl["RANDDT"]))
    value = wide[visit.label].to_numpy(dtype=float)
    observed = ~np.isnan(value)
    died = (sl["DTHFL"].eq("Y") & (sl["DTHDT"] <= window_end)).to_numpy() & ~observed
    day = np.where(died, _days(sl["DTHDT"], sl["RANDDT"]), np.nan)
    event, conditions, names = died.copy(), [observed, died], [OBSERVED, DEATH]
    columns = intercurrent_columns(trial)
    for code in ranked_events(trial):
        date, flag = columns[code]
        had = (sl[flag].eq("Y") & (sl[date] <= window_end)).to_numpy() & ~observed & ~event
        day = np.where(had, _days(sl[date], sl["RANDDT"]), day)
        event, conditions, names = event | had, conditions + [had], names + [code.lower()]
    score = np.where(observed, sign * value, np.nan)
    if event.any():
        top = np.nanmax(score) + 1 if observed.any() else 0.0
        score = np.where(event, top + (np.nanmax(day) - day), score)
    category = np.select(conditions, names, MISSING)
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
    control = trial.control.label
    rows = []
    for arm in trial.experimental_arms:
        res = win_probability(s.loc[s["TRT01P"] == arm.label, "SCORE"], s.loc[s["TRT01P"] == control, "SCORE"], level)
        rows.append({"TRT01P": arm.label, "contrast": f"{arm.label} vs {control}"} | res)
    return pd.DataFrame(rows)


def worst_rank_counts(scores: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Participants per arm by worst-rank category (``categories``)."""
    t = pd.crosstab(scores["CATEGORY"], scores["TRT01P"]).reindex(
        index=categories(trial), columns=[a.label for a in trial.arm_order], fill_value=0)
    t.index.name, t.columns.name = "CATEGORY", None
    return t.reset_index()
