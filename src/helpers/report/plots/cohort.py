"""Figures of the cohort chapter: accrual and visit completeness."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from helpers.report.plots.style import arm_palette, set_style
from helpers.trial import Trial


def plot_accrual(accrual: pd.DataFrame, trial: Trial, n_header: dict[str, str]):
    """Cumulative participants randomized by month and arm (from cohort.accrual_by_month)."""
    set_style()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    palette = arm_palette(trial)
    for arm, d in accrual.groupby("Arm", sort=False):
        ax.step(d["Month"], d["Cumulative"], where="mid", color=palette[arm], label=n_header[arm], linewidth=2)
        ax.plot(d["Month"], d["Cumulative"], "o", color=palette[arm], markersize=4)
    ax.set_xlabel("Month of randomization")
    ax.set_ylabel("Participants randomized\n(cumulative, n)")
    ax.set_ylim(0, None)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(title=None, loc="upper left")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_visit_completeness(completeness: pd.DataFrame, trial: Trial, n_header: dict[str, str]):
    """Participants attending each visit by arm, with those expected as open bars."""
    set_style()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    palette = arm_palette(trial)
    visits = list(dict.fromkeys(completeness["Visit"]))
    width = 0.8 / len(trial.arms)
    for i, arm in enumerate(trial.arms):
        d = completeness[completeness["Arm"] == arm.label].set_index("Visit").loc[visits]
        x = [j + (i - (len(trial.arms) - 1) / 2) * width for j in range(len(visits))]
        ax.bar(x, d["Expected"], width=width * 0.9, facecolor="none", edgecolor=palette[arm.label])
        ax.bar(x, d["Attended"], width=width * 0.9, color=palette[arm.label], label=n_header[arm.label])
    ax.set_xticks(range(len(visits)), visits)
    ax.set_ylabel("Participants (n)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Visit")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(trial.arms), title="Filled: attended; open: expected")
    fig.tight_layout()
    plt.close(fig)
    return fig
