"""Figures of the randomization chapter: baseline balance against the range chance gives."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.report.plots.style import arm_palette, set_style
from helpers.trial import Trial


def plot_balance(balance: pd.DataFrame, trial: Trial):
    """Dot plot of |SMD| per baseline row (dots) against the 95th percentile chance gives (grey bars),
    from ``helpers.analysis.balance.baseline_balance``."""
    set_style()
    labels = [f"{v}: {lv}" if lv else v for v, lv in zip(balance["variable"], balance["level"])]
    fig, ax = plt.subplots(figsize=(7, 0.26 * len(balance) + 1.4))
    y = np.arange(len(balance))[::-1]
    colour = arm_palette(trial)[trial.experimental_arms[0].label]
    ax.barh(y, balance["chance_p95"], color="#d9d9d9", height=0.6, label="95th percentile under re-randomization")
    ax.plot(balance["abs_smd"], y, "o", color=colour, markersize=5, label="Observed |SMD|")
    ax.set_yticks(y, labels)
    ax.set_xlabel("Absolute standardized mean difference")
    ax.set_ylim(-0.7, len(balance) - 0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    fig.tight_layout()
    plt.close(fig)
    return fig
