"""Outcome figures plot the numbers of the tables printed after them (artists checked, not pixels)."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.analysis import outcomes

from helpers.report import plots
from helpers.report.cohort import arm_header
from helpers.report.prose import estimate_text


@pytest.fixture(scope="module")
def header(adam, trial):
    return arm_header(adam["adsl"], trial)


def test_mean_ci_figure_plots_the_summary(adam, trial, header):
    summary = outcomes.mean_ci_by_visit(adam["adlb"], trial)
    fig = plots.plot_mean_ci(summary, trial, header)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == len(trial.endpoints)
    for ax, e in zip(axes, trial.endpoints):
        assert ax.get_title() == e.label
        assert ax.get_yscale() == ("log" if e.log else "linear")
        assert (e.unit in ("", "1")) or e.unit in ax.get_ylabel()
        for container, arm in zip(ax.containers, trial.arms):
            d = summary[(summary["PARAMCD"] == e.code) & (summary["TRT01P"] == arm.label)].sort_values("AVISITN")
            line = container.lines[0]
            assert np.allclose(line.get_ydata(), d["mean"].to_numpy(), equal_nan=True)
            assert np.allclose(np.round(line.get_xdata()), d["AVISITN"].to_numpy(dtype=float))
            segments = container.lines[2][0].get_segments()
            ok = d["lower"].notna().to_numpy()
            assert np.allclose([s[0][1] for s in segments], d["lower"].to_numpy()[ok])
            assert np.allclose([s[1][1] for s in segments], d["upper"].to_numpy()[ok])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(header.values())


def test_spaghetti_has_one_line_per_participant(adam, trial, header):
    adlb = adam["adlb"]
    codes = [e.code for e in trial.endpoints[:2]]
    fig = plots.plot_spaghetti(adlb, trial, header, codes)
    axes = np.array(fig.axes).reshape(len(codes), len(trial.arms))
    for row, code in zip(axes, codes):
        for ax, arm in zip(row, trial.arms):
            d = adlb[(adlb["PARAMCD"] == code) & (adlb["TRT01P"] == arm.label)]
            lines = ax.get_lines()
            assert len(lines) == d["USUBJID"].nunique()
            assert sorted(np.concatenate([line.get_ydata() for line in lines])) == pytest.approx(sorted(d["AVAL"]))
    assert [ax.get_title() for ax in axes[0]] == list(header.values())


def test_forest_plots_the_model_table(adam, trial):
    model = outcomes.mmrm_table(adam["adlb"], trial, adam["adsl"])
    fig = plots.plot_forest(model, trial)
    assert len(fig.axes) == len(trial.endpoints)
    for ax, e in zip(fig.axes, trial.endpoints):
        d = model[model["PARAMCD"] == e.code].sort_values("AVISITN")
        markers = [line for line in ax.get_lines() if line.get_marker() == "s"][0]
        assert np.allclose(markers.get_xdata(), d["estimate"].to_numpy())
        segs = ax.collections[0].get_segments()
        assert np.allclose([s[0][0] for s in segs], d["lower"]) and np.allclose([s[1][0] for s in segs], d["upper"])
        assert ax.get_xscale() == ("log" if e.log else "linear")
        reference = [line for line in ax.get_lines() if line.get_linestyle() == "--"][0]
        assert reference.get_xdata()[0] == (1.0 if e.log else 0.0)
        assert [t.get_text() for t in ax.get_yticklabels()] == list(d["AVISIT"])
        assert e.label in ax.get_title(loc="left")
        assert [t.get_text() for t in ax.texts] == [estimate_text(r.estimate, r.lower, r.upper) for r in d.itertuples()]
    assert fig._suptitle.get_text().endswith(f"vs {trial.control.label} (95% CI)")


def test_forest_axes_say_which_side_favours_which_arm(trial):
    from helpers.report.plots.outcomes import favours_label

    assert favours_label(trial.endpoint("TBIL"), trial) == "\u2190 favours Hepatic artery        favours Peripheral vein \u2192"
    assert favours_label(trial.endpoint("ALB"), trial) == "\u2190 favours Peripheral vein        favours Hepatic artery \u2192"
