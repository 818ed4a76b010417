"""Figures of the survival chapter: Kaplan-Meier curves with the number at risk."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from helpers.analysis import survival
from helpers.report.cohort import arm_header
from helpers.report.plots.style import arm_palette, set_style
from helpers.trial import Trial

def ylabel(trial: Trial, paramcd: str) -> str:
    """The y axis of a Kaplan-Meier figure: the time-to-event endpoint's label, in %."""
    return f"{trial.tte(paramcd).label} (%)"


def plot_km(km: pd.DataFrame, at_risk: pd.DataFrame, trial: Trial, n_header: dict[str, str],
            ylabel: str = "Survival (%)"):
    """Kaplan-Meier curves by arm with shaded log-log 95% CIs and censoring ticks; number at risk below.

    x in weeks from randomization (days / 7); ``at_risk`` from ``survival.number_at_risk`` (columns: days).
    """
    set_style()
    fig, (ax, tab) = plt.subplots(2, 1, figsize=(7, 5.2), sharex=True,
                                  gridspec_kw={"height_ratios": [4, 1.1], "hspace": 0.3})
    palette = arm_palette(trial)
    h = trial.horizon_days / 7
    for arm in trial.arms:
        d = km[km["ARM"] == arm.label]
        if d.empty:
            continue
        x = np.append(d["TIME"].to_numpy() / 7, h)
        y = 100 * np.append(d["SURV"].to_numpy(), d["SURV"].iloc[-1])
        ax.step(x, y, where="post", color=palette[arm.label], linewidth=2, label=n_header[arm.label])
        lo = 100 * np.append(d["LCL"].to_numpy(), d["LCL"].iloc[-1])
        hi = 100 * np.append(d["UCL"].to_numpy(), d["UCL"].iloc[-1])
        ax.fill_between(x, lo, hi, step="post", color=palette[arm.label], alpha=0.15, linewidth=0)
        cens = d[d["N_CENSOR"] > 0]
        ax.plot(cens["TIME"] / 7, 100 * cens["SURV"], "|", color=palette[arm.label], markersize=9, markeredgewidth=1.5)
    ax.set_ylim(0, 102)
    ax.set_xlim(0, h * 1.02)
    ax.set_ylabel(ylabel)
    ax.legend(loc="lower left")
    weeks = [t / 7 for t in at_risk.columns]
    ax.set_xticks(weeks)
    for i, arm in enumerate(at_risk.index):
        for w, n in zip(weeks, at_risk.loc[arm]):
            tab.text(w, len(at_risk) - 1 - i, str(int(n)), ha="center", va="center", color=palette.get(arm, "k"))
    tab.set_yticks(range(len(at_risk)), list(at_risk.index)[::-1])
    tab.set_ylim(-0.6, len(at_risk) - 0.4)
    tab.tick_params(axis="y", length=0, pad=14)
    for side in ("left", "top", "right"):
        tab.spines[side].set_visible(False)
    tab.set_title("Number at risk", loc="left", fontsize="small", pad=4)
    tab.xaxis.set_major_locator(plt.FixedLocator(weeks))
    in_years = len(weeks) > 1 and weeks[1] * 7 >= survival.YEAR_DAYS
    tab.set_xlabel("Years since randomization" if in_years else "Weeks since randomization")
    if in_years:
        tab.set_xticks(weeks, [f"{w * 7 / survival.YEAR_DAYS:g}" for w in weeks])
    ax.yaxis.set_major_locator(MaxNLocator(6))
    fig.subplots_adjust(left=0.25, right=0.97, top=0.97, bottom=0.12)
    plt.close(fig)
    return fig


def km_figure(km: pd.DataFrame, adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str | None = None):
    """The chapter's Kaplan-Meier figure of one ADTTE parameter (default: the lead time-to-event endpoint): the
    estimates ``km`` holds (``survival.km_estimates``, as the ARD gives them back) as curves by arm, N in the
    legend, number at risk at round intervals to the horizon (``survival.risk_days``, counted in ``adtte``)."""
    paramcd = trial.lead_tte.code if paramcd is None else paramcd
    return plot_km(survival.km_of(km, trial, paramcd),
                   survival.number_at_risk(adtte, trial, paramcd, survival.risk_days(trial)), trial,
                   arm_header(adsl, trial), ylabel=ylabel(trial, paramcd))
