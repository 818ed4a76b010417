"""The CONSORT flow diagram (Schulz et al., BMJ 2010;340:c332, figure 1), drawn from the flow table only."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from helpers.report.consort import box_texts
from helpers.trial import Trial


def _place(ax, renderer, x: float, top: float, text: str, ha: str = "center") -> tuple[float, float, float, float]:
    """Draw a boxed text with the box's top edge at ``top``; return the box's (left, right, bottom, top) in data units."""
    size = 8.5
    pad = 0.5 * size * ax.figure.dpi / 72
    t = ax.text(x, top, text, ha=ha, va="top", multialignment="left", fontsize=size, linespacing=1.35,
                bbox={"boxstyle": "square,pad=0.5", "facecolor": "white", "edgecolor": "#222", "linewidth": 1})
    to_data = ax.transData.inverted()
    pad_y = to_data.transform((0, pad))[1] - to_data.transform((0, 0))[1]
    t.set_y(top - pad_y)
    ext = t.get_window_extent(renderer).expanded(1, 1)
    (x0, y0), (x1, y1) = to_data.transform([(ext.x0 - pad, ext.y0 - pad), (ext.x1 + pad, ext.y1 + pad)])
    return x0, x1, y0, y1


def _arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start,
                arrowprops={"arrowstyle": "-|>", "color": "#222", "linewidth": 1, "shrinkA": 0, "shrinkB": 0})


def plot_consort(flow: pd.DataFrame, trial: Trial):
    """The CONSORT flow diagram drawn from ``consort_flow``: enrollment, allocation, follow-up and analysis.

    Boxes are stacked top-down from their measured sizes, so any number of reasons fits; the axes
    are hidden, so the book's tight bounding box crops the unused margin.
    """
    texts = box_texts(flow, trial)
    k = len(trial.arms)
    n_lines = sum(t.count("\n") + 1 for key, t in texts.items() if ":" not in key) + sum(
        max(texts[f"{stage}:{a.code}"].count("\n") + 1 for a in trial.arms) for stage in ("allocation", "follow-up", "analysis"))
    fig, ax = plt.subplots(figsize=(max(11.0, 5.0 * k), 1.0 + 0.19 * n_lines + 0.4 * 6))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axis("off")
    renderer = fig.canvas.get_renderer()
    gap = 100 * 0.3 / fig.get_figheight()
    xs = [14 + 86 * (i + 0.5) / k for i in range(k)]
    trunk = sum(xs) / k
    stages = {}
    _, _, bottom, top = _place(ax, renderer, trunk, 99, texts["assessed"])
    stages["Enrollment"] = top
    left, _, ex_bottom, ex_top = _place(ax, renderer, trunk + 4, bottom - gap, texts["excluded"], ha="left")
    _arrow(ax, (trunk, (ex_top + ex_bottom) / 2), (left, (ex_top + ex_bottom) / 2))
    _, _, r_bottom, r_top = _place(ax, renderer, trunk, ex_bottom - gap, texts["randomized"])
    _arrow(ax, (trunk, bottom), (trunk, r_top))
    branch = r_bottom - gap
    ax.plot([trunk, trunk], [r_bottom, branch], color="#222", linewidth=1)
    ax.plot([min(xs + [trunk]), max(xs + [trunk])], [branch, branch], color="#222", linewidth=1)
    ends = {x: branch for x in xs}
    for stage in ("allocation", "follow-up", "analysis"):
        top = min(ends.values()) - 1.5 * gap
        stages[stage.capitalize()] = top
        for x, arm in zip(xs, trial.arms):
            _, _, b, t = _place(ax, renderer, x, top, texts[f"{stage}:{arm.code}"])
            _arrow(ax, (x, ends[x]), (x, t))
            ends[x] = b
    for name, y in stages.items():
        ax.text(0, y, name, ha="left", va="top", fontsize=9, fontweight="bold",
                bbox={"boxstyle": "round,pad=0.35", "facecolor": "#d9e6f2", "edgecolor": "#1b6ca8", "linewidth": 0.8})
    plt.close(fig)
    return fig
