"""Figure of the design chapter: the probability of a significant result against the true effect."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.analysis import design
from helpers.analysis.design import KEY, POWER_TARGET, PRIMARY
from helpers.report.plots.style import ARM_COLOURS, placeholder_figure, set_style
from helpers.trial import Trial, shown_unit


def _rate(ax, x, rows: pd.DataFrame, column: str, colour: str, label: str, marker: str = "o", bars: bool = True):
    y = 100 * rows[column].to_numpy(float)
    if bars:
        err = np.clip(np.vstack([y - 100 * rows["power_lower"].to_numpy(float),
                                 100 * rows["power_upper"].to_numpy(float) - y]), 0, None)  # rounding: never below 0
        ax.errorbar(x, y, yerr=err, color=colour, marker=marker, linewidth=1.6, capsize=3, label=label)
    else:
        ax.plot(x, y, color=colour, marker=marker, linewidth=1.6, linestyle="--", label=label)


def _references(ax, alpha: float):
    ax.axhline(100 * POWER_TARGET, color="#888888", linewidth=0.8, linestyle="--")
    ax.axhline(100 * alpha, color="#888888", linewidth=0.8, linestyle=":")
    ax.text(1.0, 100 * POWER_TARGET, f" {100 * POWER_TARGET:.0f}%", transform=ax.get_yaxis_transform(), va="center",
            fontsize="x-small", color="#555555")
    ax.text(1.0, 100 * alpha, f" {100 * alpha:g}%", transform=ax.get_yaxis_transform(), va="center",
            fontsize="x-small", color="#555555")
    ax.set_ylim(0, 100)


def plot_design_power(oc: pd.DataFrame, trial: Trial):
    """Left: the primary endpoint's probability of a significant result against the hazard ratio of its events, or
    a continuous primary endpoint's effect (larger benefit to the right). Right: the key secondary endpoint's, tested alone and claimed in the fixed sequence,
    against its effect. Error bars: Wilson 95% Monte Carlo intervals; reference lines at 80% and at alpha."""
    set_style()
    t = design.design_trial(trial)
    prim = oc[oc["endpoint"] == PRIMARY].sort_values("scenario")
    key = oc[oc["endpoint"] == KEY].sort_values("scenario")
    panels = [p for p in (prim, key) if len(p)]
    if not panels:
        return placeholder_figure("No scenario was simulated")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.9), squeeze=False)
    axes = list(axes[0])
    exp, ctl = t.experimental_arms[0].label, t.control.label
    if len(prim):
        ax = axes.pop(0)
        if design.is_continuous(t):
            e = t.endpoint(t.primary_endpoint.code)
            _rate(ax, prim["primary_effect"].to_numpy(float), prim, "power", ARM_COLOURS[0], "primary endpoint met")
            if e.better == "lower":
                ax.invert_xaxis()
            unit = "log scale" if e.log else shown_unit(e.unit)
            ax.set_xlabel(f"Effect on change in {e.label} to {t.primary_visit.label}" + (f" ({unit})" if unit else ""))
            ax.set_title(f"Primary: {e.label}", fontsize="medium")
        else:
            _rate(ax, prim["hazard_ratio"], prim, "power", ARM_COLOURS[0], "primary endpoint met")
            ax.invert_xaxis()
            events = " and ".join(t.event_label(c).lower() for c in t.lead_tte.events)
            ax.set_xlabel(f"Hazard ratio of {events}, {exp} vs {ctl}")
            ax.set_title(f"Primary: survival to day {t.horizon_days}", fontsize="medium")
        ax.set_ylabel("Probability (%)")
        _references(ax, t.alpha)
        ax.legend(loc="upper left", fontsize="x-small")
    if len(key):
        ax = axes.pop(0)
        e = t.endpoint(t.key_secondary)
        x = key["key_effect"].to_numpy(float)
        _rate(ax, x, key, "power", ARM_COLOURS[1], "significant (tested alone)")
        _rate(ax, x, key, "claimed", ARM_COLOURS[2], "claimed (fixed sequence)", marker="s", bars=False)
        if e.better == "lower":
            ax.invert_xaxis()
        unit = "log scale" if e.log else shown_unit(e.unit)
        ax.set_xlabel(f"Effect on change in {e.label} to {t.last_visit.label}" + (f" ({unit})" if unit else ""))
        ax.set_ylabel("Probability (%)")
        ax.set_title(f"Key secondary: {e.label}", fontsize="medium")
        _references(ax, t.alpha)
        ax.legend(loc="upper left", fontsize="x-small")
    fig.tight_layout()
    plt.close(fig)
    return fig
