"""Style shared by every figure: fonts, colours per arm, and saving a figure as PNG and SVG."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from helpers.trial import Trial

ARM_COLOURS = ["#1b6ca8", "#d1495b", "#00798c", "#edae49", "#66a182"]


def set_style() -> None:
    """One style for every figure of the book. Figures are returned closed: the notebook shows each once."""
    sns.set_theme(context="paper", style="ticks", font_scale=1.2)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.spines.top": False,
                         "axes.spines.right": False, "legend.frameon": False, "svg.hashsalt": "book"})


def placeholder_figure(message: str):
    """A small figure that says why a plot cannot be drawn (so its cross-reference still resolves)."""
    set_style()
    fig, ax = plt.subplots(figsize=(6.0, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize="medium", wrap=True)
    plt.close(fig)
    return fig


def arm_palette(trial: Trial) -> dict[str, str]:
    """A fixed colour per arm label, in the trial file's order, the same in every figure."""
    return {a.label: ARM_COLOURS[i % len(ARM_COLOURS)] for i, a in enumerate(trial.arms)}


_mark = {"text": None}


def mark_figures(text: str | None) -> None:
    """Stamp ``text`` (e.g. 'SYNTHETIC DATA') in the corner of every figure saved from now on; None for none."""
    _mark["text"] = text


def save_figure(fig, output_dir, name: str):
    """Write ``fig`` as <output_dir>/figures/<name>.png and .svg (nothing when output_dir is None) and
    return it, so that a notebook cell both saves and shows it; stamped with the data mark if one is set."""
    if _mark["text"] and not any(t.get_gid() == "data-mark" for t in fig.texts):
        fig.text(0.995, 0.005, _mark["text"], ha="right", va="bottom", fontsize=7, color="#b2182b", alpha=0.8,
                 fontweight="bold", gid="data-mark")
    if output_dir is not None:
        folder = Path(output_dir) / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{name}.png", dpi=150, bbox_inches="tight", metadata={"Software": None})
        with plt.rc_context({"svg.hashsalt": name}):
            fig.savefig(folder / f"{name}.svg", bbox_inches="tight", metadata={"Date": None})
    return fig
