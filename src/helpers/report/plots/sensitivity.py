"""Figure of the sensitivity chapter: the primary and sensitivity analyses side by side."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.report.plots.style import placeholder_figure, set_style
from helpers.report.sensitivity import figure_rows
from helpers.trial import Trial, shown_unit


def _row_label(r, e, several: bool) -> str:
    label = r.analysis if pd.isna(r.delta) or r.delta == 0 else \
        f"{r.analysis}\n(delta = {r.delta:.2f}{'' if e.unit in ('', '1') else ' ' + e.unit})"
    return f"{label}\n{r.contrast}" if several else label


def plot_sensitivity(results: pd.DataFrame, trial: Trial, paramcd: str):
    """Forest-style comparison of the analyses: upper panel, differences in change (endpoint unit, reference 0;
    ratios with reference 1 for log endpoints); lower panel, the worst-rank win probability (reference 0.5).
    Estimate and 95% CI printed beside each row."""
    set_style()
    e = trial.endpoint(paramcd)
    last = trial.last_visit.label
    d = figure_rows(results)
    if d.empty:
        return placeholder_figure(f"{e.label} at {last}: not estimable")
    control = trial.control.label
    experimental = [a.label for a in trial.experimental_arms]
    several = len(trial.arms) > 2
    panels = [p for p in (0, 1) if (d["panel"] == p).any()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 0.55 * len(d) + 0.9 * len(panels) + 0.4), squeeze=False,
                             gridspec_kw={"height_ratios": [max(1, (d["panel"] == p).sum()) for p in panels]})
    unit = f" ({shown_unit(e.unit)})" if shown_unit(e.unit) else ""
    titles = {0: (f"Ratio of geometric means, {e.label}" if e.log else f"Difference in change in {e.label}{unit}"),
              1: "Win probability: P(" + ("experimental arm" if several else experimental[0])
                 + f" better than {control})\n(composite: death ranked worst)"}
    refs = {0: 1.0 if e.log else 0.0, 1: 0.5}
    for ax, p in zip(axes[:, 0], panels):
        rows = d[d["panel"] == p]
        y = np.arange(len(rows))[::-1]
        ax.hlines(y, rows["lower"], rows["upper"], color="#333333", linewidth=1.4)
        ax.plot(rows["estimate"].to_numpy(), y, "s", color="#1b6ca8", markersize=6, linestyle="none")
        ax.axvline(refs[p], color="#888888", linewidth=0.8, linestyle="--")
        if p == 0 and e.log:
            ax.set_xscale("log")
        labels = [_row_label(r, e, several) for r in rows.itertuples()]
        ax.set_yticks(y, labels)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.margins(x=0.08)
        ax.set_xlabel(titles[p], fontsize="small")
        for yy, r in zip(y, rows.itertuples()):
            ax.text(1.02, yy, f"{r.estimate:.2f} ({r.lower:.2f} to {r.upper:.2f})", transform=ax.get_yaxis_transform(),
                    va="center", fontsize="x-small")
        ax.tick_params(axis="both", labelsize="x-small")
    fig.suptitle(f"{', '.join(experimental)} vs {control}, {last} (95% CI)", fontsize="medium")
    fig.tight_layout()
    plt.close(fig)
    return fig
