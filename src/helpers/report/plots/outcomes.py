"""Figures of the outcomes chapter: means by visit, trajectories, forest plot of effects."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from helpers.report.plots.style import arm_palette, set_style
from helpers.report.prose import estimate_text
from helpers.trial import Trial, label_with_unit


def _plain_log_axis(axis) -> None:
    """Log axis with ticks at 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8 x 10^k printed as plain numbers (no 10^k)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0), numticks=30))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def _endpoint_grid(n: int, ncols: int, width: float = 3.4, height: float = 2.6):
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.6), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def plot_mean_ci(summary: pd.DataFrame, trial: Trial, n_header: dict[str, str], ncols: int = 3):
    """Mean (geometric mean for log endpoints, log axis) with 95% CI over visits by arm, one panel per
    endpoint (from analysis.outcomes.mean_ci_by_visit); arms dodged slightly along the week axis."""
    set_style()
    endpoints = [e for e in trial.endpoints if e.code in set(summary["PARAMCD"])]
    fig, axes = _endpoint_grid(len(endpoints), ncols)
    palette = arm_palette(trial)
    weeks = [v.week for v in trial.visits]
    dodge = 0.025 * (max(weeks) - min(weeks) or 1)
    for ax, e in zip(axes, endpoints):
        d = summary[summary["PARAMCD"] == e.code]
        for i, arm in enumerate(trial.arms):
            a = d[d["TRT01P"] == arm.label].sort_values("AVISITN")
            x = a["AVISITN"].to_numpy(dtype=float) + (i - (len(trial.arms) - 1) / 2) * dodge
            err = [(a["mean"] - a["lower"]).to_numpy(), (a["upper"] - a["mean"]).to_numpy()]
            ax.errorbar(x, a["mean"].to_numpy(), yerr=err, color=palette[arm.label], marker="o", markersize=4,
                        capsize=2.5, linewidth=1.5, label=n_header[arm.label])
        if e.log:
            ax.set_yscale("log")
            _plain_log_axis(ax.yaxis)
        ax.set_title(e.label, fontsize="medium")
        ax.set_ylabel(label_with_unit("Geometric mean" if e.log else "Mean", e.unit))
        ax.set_xticks(weeks)
        ax.set_xlabel("Week")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(trial.arms), bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    plt.close(fig)
    return fig


def plot_spaghetti(adlb: pd.DataFrame, trial: Trial, n_header: dict[str, str], paramcds: list[str] | None = None):
    """Individual trajectories of AVAL over visits: one row per endpoint, one column per arm, one line
    per participant (log axis for log endpoints); y-axes shared within a row."""
    set_style()
    endpoints = [e for e in trial.endpoints if paramcds is None or e.code in paramcds]
    fig, axes = plt.subplots(len(endpoints), len(trial.arms), figsize=(3.4 * len(trial.arms), 1.9 * len(endpoints) + 0.5),
                             squeeze=False, sharex=True)
    palette = arm_palette(trial)
    weeks = [v.week for v in trial.visits]
    for row, e in zip(axes, endpoints):
        d = adlb[adlb["PARAMCD"] == e.code]
        for ax, arm in zip(row, trial.arms):
            for _, s in d[d["TRT01P"] == arm.label].sort_values("AVISITN").groupby("USUBJID", sort=True):
                ax.plot(s["AVISITN"].to_numpy(dtype=float), s["AVAL"].to_numpy(), color=palette[arm.label],
                        alpha=0.55, linewidth=0.9, marker="o", markersize=2)
            if e.log:
                ax.set_yscale("log")
                _plain_log_axis(ax.yaxis)
        lo, hi = d["AVAL"].min(), d["AVAL"].max()
        for ax in row:
            ax.set_ylim(*((lo / 1.1, hi * 1.1) if e.log else (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))))
        row[0].set_ylabel(label_with_unit(e.label, e.unit, "\n"), fontsize="small")
    for ax, arm in zip(axes[0], trial.arms):
        ax.set_title(n_header[arm.label], fontsize="medium")
    for ax in axes[-1]:
        ax.set_xticks(weeks)
        ax.set_xlabel("Week")
    fig.tight_layout()
    plt.close(fig)
    return fig


def favours_label(endpoint, trial: Trial) -> str:
    """'<- favours A    favours B ->' for an effect axis: the side where the experimental arm is better
    depends on whether lower or higher values are better for the endpoint (trial file)."""
    experimental = " and ".join(a.label for a in trial.experimental_arms)
    control = trial.control.label
    left, right = (experimental, control) if endpoint.better == "lower" else (control, experimental)
    return f"\u2190 favours {left}        favours {right} \u2192"


def plot_forest(model: pd.DataFrame, trial: Trial):
    """Forest plot of treatment effects (from analysis.outcomes.mmrm_table or ancova) across endpoints and weeks:
    one panel per endpoint with its own axis (log axis and reference 1 for ratios of geometric means,
    reference 0 for differences in the endpoint's unit); estimate and 95% CI printed on the right; each axis
    says which side favours which arm."""
    set_style()
    endpoints = [e for e in trial.endpoints if e.code in set(model["PARAMCD"])]
    visits = list(dict.fromkeys(model.sort_values("AVISITN")["AVISIT"]))
    fig, axes = plt.subplots(len(endpoints), 1, figsize=(7.5, 0.32 * len(visits) * len(endpoints) + 0.45 * len(endpoints) + 0.6),
                             squeeze=False)
    for ax, e in zip(axes[:, 0], endpoints):
        d = model[model["PARAMCD"] == e.code].set_index("AVISIT").reindex(visits)
        y = np.arange(len(visits))[::-1]
        ok = d["estimate"].notna().to_numpy()
        ax.hlines(y[ok], d["lower"][ok], d["upper"][ok], color="#333333", linewidth=1.4)
        ax.plot(d["estimate"][ok].to_numpy(), y[ok], "s", color="#1b6ca8", markersize=5, linestyle="none")
        ax.axvline(1.0 if e.log else 0.0, color="#888888", linewidth=0.8, linestyle="--")
        if e.log:
            ax.set_xscale("log")
            _plain_log_axis(ax.xaxis)
        ax.margins(x=0.06)
        ax.set_yticks(y, visits)
        ax.set_ylim(-0.7, len(visits) - 0.3)
        kind = "ratio of geometric means" if e.log else label_with_unit("difference", e.unit)
        ax.set_title(f"{e.label}: {kind}", fontsize="small", loc="left")
        ax.set_xlabel(favours_label(e, trial), fontsize="x-small", color="#555555")
        for yy, (_, r) in zip(y, d.iterrows()):
            ax.text(1.02, yy, estimate_text(r["estimate"], r["lower"], r["upper"]), transform=ax.get_yaxis_transform(),
                    va="center", fontsize="x-small")
        ax.tick_params(axis="both", labelsize="x-small")
    others = ", ".join(a.label for a in trial.experimental_arms)
    fig.suptitle(f"{others} vs {trial.control.label} (95% CI)", fontsize="medium")
    fig.tight_layout()
    plt.close(fig)
    return fig
