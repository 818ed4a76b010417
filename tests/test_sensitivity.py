"""Sensitivity analyses: Rubin's rules by hand, MI against the complete-data ANCOVA and under MAR
dropout, the posterior-predictive draw, worst-rank scores and the win probability by hand and
against scipy, the tipping point on a constructed case, the comparison figure's artists, the
whole chain on the sister trial (one follow-up visit), and every output against the reference stored
from the statsmodels-formula implementation (fixtures/sensitivity_reference, to tests/tolerances.py)."""
from __future__ import annotations

import dataclasses
import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.analysis import imputation, outcomes, survival, tipping, worst_rank
from helpers.analysis import sensitivity as sens
from helpers.pipeline import load_cohort
from helpers.report import plots
from helpers.report import sensitivity as report
from tolerances import COLUMNS, assert_frame_close

PARAM = "MELD"


# ------------------------------------------------------------------ constructed data

def _adsl(ids, arms, trial, rand="2025-01-01", death_day=None, tx_day=None) -> pd.DataFrame:
    """Minimal ADSL: arm labels from codes; death or transplant on a study day (day 1 = randomization)."""
    rand = pd.Timestamp(rand)
    death_day = death_day or {}
    tx_day = tx_day or {}
    day = lambda d: rand + pd.Timedelta(days=d - 1)
    return pd.DataFrame({
        "USUBJID": ids, "TRT01P": [trial.arm_labels[a] for a in arms], "ITTFL": "Y",
        "RANDDT": rand, "TRTSDT": rand,
        "DTHFL": ["Y" if i in death_day else "N" for i in ids],
        "DTHDT": [day(death_day[i]) if i in death_day else pd.NaT for i in ids],
        "ICE1FL": ["Y" if i in tx_day else "N" for i in ids],
        "ICE1DT": [day(tx_day[i]) if i in tx_day else pd.NaT for i in ids]})


def _adlb(trial, values: dict[str, dict[int, float]]) -> pd.DataFrame:
    """ADLB records of PARAM from {subject: {week: AVAL}}, BASE and CHG derived as ADaM does."""
    labels = {v.week: v.label for v in trial.visits}
    rows = [(s, w, a) for s, by_week in values.items() for w, a in by_week.items()]
    d = pd.DataFrame(rows, columns=["USUBJID", "AVISITN", "AVAL"])
    d["AVISIT"] = d["AVISITN"].map(labels)
    d["PARAMCD"] = PARAM
    d["BASE"] = d["USUBJID"].map(d[d["AVISITN"] == 0].set_index("USUBJID")["AVAL"])
    d["CHG"] = (d["AVAL"] - d["BASE"]).where(d["AVISITN"] > 0)
    return d


def _simulated(trial, n: int, seed: int, effect: float = -1.0, dropout: bool = False):
    """ADSL and ADLB with correlated changes over the follow-up visits; with ``dropout`` the last visit is
    missing more often when the change at the visit before was large (missing at random)."""
    rng = np.random.default_rng(seed)
    arms = [trial.arm_codes[i % len(trial.arms)] for i in range(n)]
    ids = [f"S{i:04d}" for i in range(n)]
    weeks = [v.week for v in trial.followup_visits]
    values, full_last = {}, {}
    for s, arm in zip(ids, arms):
        base = rng.normal(18, 5)
        chg, by_week = 0.0, {0: base}
        for w in weeks:
            chg = 0.7 * chg + (effect * w / weeks[-1]) * (arm != trial.control_arm) - 0.05 * (base - 18) + rng.normal(0, 1.5)
            by_week[w] = base + chg
        full_last[s] = by_week[weeks[-1]]
        if dropout and len(weeks) > 1 and rng.random() < 1 / (1 + np.exp(-(by_week[weeks[-2]] - base - 1.0) * 1.5)):
            del by_week[weeks[-1]]
        values[s] = by_week
    adsl = _adsl(ids, arms, trial)
    adlb = _adlb(trial, values)
    adlb["TRT01P"] = adlb["USUBJID"].map(adsl.set_index("USUBJID")["TRT01P"])
    return adsl, adlb, full_last


# ------------------------------------------------------------------ Rubin's rules

def test_rubin_rules_hand_computed():
    # q = (2, 4, 3), u = (1, 1, 1), m = 3, complete-data df 10:
    # qbar = 3; W = 1; B = var(q) = ((2-3)^2 + (4-3)^2 + 0) / 2 = 1; T = W + (1 + 1/3) B = 7/3
    # lambda = (4/3) / (7/3) = 4/7; df_old = (m - 1) / lambda^2 = 2 * 49 / 16 = 49/8
    # df_obs = (10 + 1) / (10 + 3) * 10 * (1 - 4/7) = 330/91; df = df_old df_obs / (df_old + df_obs) = 16170/7099
    r = imputation.rubin([2, 4, 3], [1, 1, 1], df_complete=10)
    df = Fraction(49, 8) * Fraction(330, 91) / (Fraction(49, 8) + Fraction(330, 91))
    assert df == Fraction(16170, 7099)
    assert r["estimate"] == pytest.approx(3) and r["within"] == pytest.approx(1) and r["between"] == pytest.approx(1)
    assert r["total"] == pytest.approx(7 / 3) and r["se"] == pytest.approx(np.sqrt(7 / 3))
    assert r["fmi_lambda"] == pytest.approx(4 / 7)
    assert r["df"] == pytest.approx(float(df))
    half = stats.t.ppf(0.975, float(df)) * np.sqrt(7 / 3)
    assert (r["lower"], r["upper"]) == pytest.approx((3 - half, 3 + half))
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(3 / np.sqrt(7 / 3), float(df)))


def test_rubin_without_between_variance_keeps_complete_data_variance():
    r = imputation.rubin([1.5, 1.5, 1.5, 1.5], [0.25, 0.25, 0.25, 0.25], df_complete=20)
    assert r["se"] == pytest.approx(0.5) and r["between"] == 0
    assert r["df"] == pytest.approx(21 / 23 * 20)
    with pytest.raises(ValueError):
        imputation.rubin([1.0], [1.0], 10)


# ------------------------------------------------------------------ imputation

def test_bayesian_draw_is_the_posterior_predictive():
    """Draws at a point far from the data follow t(n - p) with scale s^2 (1 + h): the spread includes
    the parameter uncertainty h (a draw with fixed parameters would give s^2 df/(df - 2) only)."""
    rng = np.random.default_rng(1)
    xs = np.arange(12.0)
    x = np.column_stack([np.ones(12), xs])
    y = 1 + 0.5 * xs + rng.normal(0, 1, 12)
    x_new = np.array([[1.0, 40.0]])
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    s2 = np.sum((y - x @ beta) ** 2) / 10
    h = float((x_new @ np.linalg.inv(x.T @ x) @ x_new.T)[0, 0])
    draws = np.array([imputation.bayesian_regression_draw(x, y, x_new, rng)[0] for _ in range(40000)])
    assert draws.mean() == pytest.approx(float((x_new @ beta)[0]), abs=4 * np.sqrt(s2 * (1 + h) * 10 / 8 / 40000))
    assert draws.var() == pytest.approx(s2 * (1 + h) * 10 / 8, rel=0.05)
    with pytest.raises(ValueError):
        imputation.bayesian_regression_draw(x[:2], y[:2], x_new, rng)


def test_is_monotone():
    assert imputation.is_monotone(np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]]))
    assert not imputation.is_monotone(np.array([[1, 1, 1], [0, 1, 1]]))


def test_mi_without_missing_data_equals_complete_data_ancova(trial):
    adsl, adlb, _ = _simulated(trial, 30, seed=3)
    wide = sens.change_wide(adlb, adsl, trial, PARAM)
    completed = imputation.impute_changes(wide, trial, m=3, seed=1)
    assert not completed["IMPUTED"].any()
    mi = imputation.mi_ancova(completed, trial).iloc[0]
    ref = outcomes.ancova(adlb, trial, adsl)
    ref = ref[(ref["PARAMCD"] == PARAM) & (ref["AVISIT"] == trial.last_visit.label)].iloc[0]
    assert mi["estimate"] == pytest.approx(ref["estimate"]) and mi["se"] == pytest.approx(ref["se"])
    assert mi["between"] == pytest.approx(0, abs=1e-20)
    assert mi["df"] == pytest.approx((ref["df"] + 1) / (ref["df"] + 3) * ref["df"])
    assert mi["n"] == ref["n"] == 30


def test_imputation_keeps_observed_values_and_imputes_by_arm(trial):
    adsl, adlb, _ = _simulated(trial, 60, seed=5, effect=-8.0)
    last = trial.last_visit.label
    adlb = adlb[~((adlb["AVISIT"] == last) & adlb["USUBJID"].isin(adsl["USUBJID"].iloc[::3]))]
    wide = sens.change_wide(adlb, adsl, trial, PARAM)
    assert wide[last].isna().any()
    completed = imputation.impute_changes(wide, trial, m=4, seed=2)
    assert completed["CHG"].notna().all() and set(completed["IMP"]) == {1, 2, 3, 4}
    for _, d in completed[completed["AVISIT"] == last].groupby("IMP"):
        obs = d[~d["IMPUTED"]].set_index("USUBJID")["CHG"]
        assert obs.to_dict() == wide.set_index("USUBJID").loc[obs.index, last].to_dict()
    imputed = completed[completed["IMPUTED"] & (completed["AVISIT"] == last)]
    assert imputed.groupby("USUBJID")["CHG"].nunique().min() > 1
    means = imputed.groupby("TRT01P", observed=True)["CHG"].mean()
    observed = wide.groupby("TRT01P", observed=True)[last].mean()
    control, experimental = [a.label for a in trial.arm_order]
    assert (means[experimental] - means[control]) * (observed[experimental] - observed[control]) > 0


def test_mi_is_close_to_the_full_data_result_under_mar_dropout(trial):
    adsl, adlb, full_last = _simulated(trial, 400, seed=11, effect=-1.0, dropout=True)
    wide = sens.change_wide(adlb, adsl, trial, PARAM)
    mi = imputation.mi_ancova(imputation.impute_changes(wide, trial, m=10, seed=4), trial).iloc[0]
    full = wide.assign(CHG=wide["USUBJID"].map(full_last) - wide["BASE"])
    ref = imputation.ancova_fit(full, trial).iloc[0]
    assert wide[trial.last_visit.label].isna().mean() > 0.2
    assert abs(mi["estimate"] - ref["estimate"]) < 2 * mi["se"]
    assert mi["se"] > np.sqrt(ref["variance"])


# ------------------------------------------------------------------ worst rank

def _worst_rank_case(trial):
    """Control: changes -1 and +2, death on day 30. Experimental: changes -3 and 0, death on day 100,
    transplant on day 50 and death on day 200 (after the last visit's window), both without a value."""
    last = trial.last_visit.label
    ids = ["C1", "C2", "C3", "E1", "E2", "E3", "E4", "E5"]
    arms = [trial.control_arm] * 3 + [next(a for a in trial.arm_codes if a != trial.control_arm)] * 5
    adsl = _adsl(ids, arms, trial, death_day={"C3": 30, "E3": 100, "E5": 200}, tx_day={"E4": 50})
    wide = pd.DataFrame({"USUBJID": ids, "TRT01P": pd.Categorical(adsl["TRT01P"], categories=[a.label for a in trial.arm_order]),
                         "BASE": 20.0, last: [-1, 2, np.nan, -3, 0, np.nan, np.nan, np.nan]})
    return adsl, wide


def test_worst_rank_scores_hand_case(trial):
    adsl, wide = _worst_rank_case(trial)
    s = worst_rank.worst_rank_scores(wide, adsl, trial, PARAM).set_index("USUBJID")
    assert list(s["CATEGORY"]) == ["observed", "observed", "death", "observed", "observed", "death", "missing", "missing"]
    assert s.loc["C3", "SCORE"] > s.loc["E3", "SCORE"] > s[s["CATEGORY"] == "observed"]["SCORE"].max()
    assert s.loc[["C1", "C2", "E1", "E2"], "SCORE"].tolist() == [-1, 2, -3, 0]
    assert s.loc["C3", "EVENT_DAY"] == 30
    # experimental better in: E1 (-3) vs all 3; E2 (0) vs C2 and C3; E3 (day 100) vs C3 (day 30): 6 of 9 pairs
    wr = worst_rank.worst_rank(s.reset_index(), trial).iloc[0]
    assert wr["estimate"] == pytest.approx(6 / 9) and wr["U"] == 6
    assert (wr["n_experimental"], wr["n_control"]) == (3, 3)


def test_worst_rank_ranks_transplant_when_the_trial_file_says_so(trial):
    adsl, wide = _worst_rank_case(trial)
    as_event = dataclasses.replace(trial, time_to_event=(dataclasses.replace(trial.tte("OS"), events=("DEATH", "TRANSPLANT"), censors=()),))
    s = worst_rank.worst_rank_scores(wide, adsl, as_event, PARAM).set_index("USUBJID")
    assert s.loc["E4", "CATEGORY"] == "transplant" and s.loc["C3", "SCORE"] > s.loc["E4", "SCORE"] > s.loc["E3", "SCORE"]
    # E4 (day 50) adds one win (against C3, day 30) in 3 pairs: 7 of 12
    assert worst_rank.worst_rank(s.reset_index(), as_event).iloc[0]["estimate"] == pytest.approx(7 / 12)


def test_worst_rank_direction_follows_better_higher(trial):
    adsl, wide = _worst_rank_case(trial)
    endpoints = tuple(dataclasses.replace(e, better="higher") if e.code == PARAM else e for e in trial.endpoints)
    flipped = dataclasses.replace(trial, endpoints=endpoints)
    s = worst_rank.worst_rank_scores(wide, adsl, flipped, PARAM).set_index("USUBJID")
    assert s.loc[["C1", "C2", "E1", "E2"], "SCORE"].tolist() == [1, -2, 3, 0]
    assert s.loc["E3", "SCORE"] > 3


def test_win_probability_against_scipy():
    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 8, 14).astype(float), rng.integers(2, 10, 11).astype(float)
    r = worst_rank.win_probability(x, y)
    wins = sum((xi < yj) + 0.5 * (xi == yj) for xi in x for yj in y)
    assert r["estimate"] == pytest.approx(wins / (len(x) * len(y)))
    mw = stats.mannwhitneyu(y, x, alternative="two-sided", method="asymptotic")
    assert r["U"] == pytest.approx(mw.statistic) and r["p_value"] == pytest.approx(mw.pvalue)
    bm = stats.brunnermunzel(x, y)
    assert (r["estimate"] - 0.5) / r["se"] == pytest.approx(bm.statistic)
    assert 2 * stats.t.sf(abs(bm.statistic), r["df"]) == pytest.approx(bm.pvalue)
    half = stats.t.ppf(0.975, r["df"]) * r["se"]
    assert (r["lower"], r["upper"]) == pytest.approx((r["estimate"] - half, r["estimate"] + half))


# ------------------------------------------------------------------ tipping point

def _all_imputed_case(trial):
    """Two identical imputations; every experimental value imputed, so a delta moves the estimate by
    exactly delta and leaves its standard error unchanged."""
    control, experimental = [a.label for a in trial.arm_order]
    last = trial.last_visit.label
    base = [10.0, 14, 18, 22, 26, 30]
    d = pd.DataFrame({"USUBJID": [f"S{i}" for i in range(12)], "TRT01P": [control] * 6 + [experimental] * 6,
                      "BASE": base * 2, "CHG": [0.5, -0.2, 0.9, 0.1, 0.4, -0.3, -2.4, -2.0, -3.1, -1.8, -2.6, -2.2],
                      "IMPUTED": [False] * 6 + [True] * 6, "AVISIT": last})
    d["TRT01P"] = pd.Categorical(d["TRT01P"], categories=[control, experimental])
    return pd.concat([d.assign(IMP=1), d.assign(IMP=2)], ignore_index=True)


def test_tipping_point_on_a_constructed_case(trial):
    completed = _all_imputed_case(trial)
    arm = [a.label for a in trial.arm_order][1]
    ref = imputation.ancova_fit(completed[completed["IMP"] == 1], trial).iloc[0]
    est0, se0, df_com = ref["estimate"], np.sqrt(ref["variance"]), ref["df_complete"]
    df = (df_com + 1) / (df_com + 3) * df_com
    assert est0 < 0 and 2 * stats.t.sf(abs(est0) / se0, df) < 0.05
    expected = -est0 - stats.t.ppf(0.975, df) * se0
    grid = np.arange(0, np.ceil(abs(est0) + 4 * se0) + 1)
    table = tipping.tipping_grid(completed, trial, PARAM, grid)
    assert np.allclose(table["estimate"], est0 + grid) and np.allclose(table["se"], se0)
    tp = tipping.tipping_point(table, completed, trial, PARAM, arm)
    assert tp["from_conclusion"] == "favours experimental" and tp["to_conclusion"] == "no significant difference"
    assert tp["delta"] == pytest.approx(expected, abs=1e-4)
    assert tp["p_value"] == pytest.approx(0.05, abs=1e-6)


def test_tipping_point_not_reached_within_the_grid(trial):
    completed = _all_imputed_case(trial)
    tp = tipping.tipping_point(tipping.tipping_grid(completed, trial, PARAM, [0, 0.1]), completed, trial, PARAM,
                            [a.label for a in trial.arm_order][1])
    assert np.isnan(tp["delta"]) and tp["grid_max"] == 0.1 and tp["to_conclusion"] == ""


def test_default_delta_grid_is_round_and_starts_at_zero(trial):
    grid = tipping.default_delta_grid(_all_imputed_case(trial), trial)
    step = grid[1] - grid[0]
    assert grid[0] == 0 and np.allclose(np.diff(grid), step)
    mantissa = step / 10 ** np.floor(np.log10(step))
    assert any(np.isclose(mantissa, s) for s in (1, 2, 2.5, 5))


def test_conclusion():
    assert tipping.conclusion(-1.0, 0.01, worse_sign=1, alpha=0.05) == "favours experimental"
    assert tipping.conclusion(-1.0, 0.01, worse_sign=-1, alpha=0.05) == "favours control"
    assert tipping.conclusion(1.0, 0.2, worse_sign=1, alpha=0.05) == "no significant difference"
    assert tipping.conclusion(-1.0, 0.03, worse_sign=1, alpha=0.025) == "no significant difference"


# ------------------------------------------------------------------ committed data, figure, sister trial

@pytest.fixture(scope="module")
def analyses(adam, trial):
    return sens.sensitivity_analyses(adam["adlb"], adam["adsl"], trial, PARAM, m=5)


@pytest.fixture(scope="module")
def results(analyses):
    return analyses["results"]


def test_change_wide_has_every_itt_participant_with_a_baseline(adam, trial):
    wide = sens.change_wide(adam["adlb"], adam["adsl"], trial, PARAM)
    adlb = adam["adlb"]
    base = adlb[(adlb["PARAMCD"] == PARAM) & (adlb["AVISITN"] == 0) & adlb["AVAL"].notna()]
    assert sorted(wide["USUBJID"]) == sorted(set(base["USUBJID"]) & set(adam["adsl"].loc[adam["adsl"]["ITTFL"] == "Y", "USUBJID"]))
    last = trial.last_visit
    observed = adlb[(adlb["PARAMCD"] == PARAM) & (adlb["AVISITN"] == last.week) & adlb["CHG"].notna()]
    assert wide[last.label].notna().sum() == len(observed)


def test_results_table(results, adam, trial):
    assert list(results.columns) == sens.RESULT_COLUMNS
    mmrm = outcomes.mmrm_table(adam["adlb"], trial, adam["adsl"])
    ref = mmrm[(mmrm["PARAMCD"] == PARAM) & (mmrm["AVISIT"] == trial.last_visit.label)].iloc[0]
    primary = results[results["analysis"] == sens.PRIMARY].iloc[0]
    assert primary[["estimate", "lower", "upper", "p_value"]].tolist() == pytest.approx(
        ref[["estimate", "lower", "upper", "p_value"]].tolist())
    mi = results[results["analysis"] == sens.MULTIPLE_IMPUTATION].iloc[0]
    assert mi["n"] == adam["adsl"]["ITTFL"].eq("Y").sum()
    wr = results[results["measure"] == sens.WIN_PROBABILITY].iloc[0]
    assert 0 <= wr["lower"] <= wr["estimate"] <= wr["upper"] <= 1


def test_sensitivity_figure_plots_the_results(results, trial):
    fig = plots.plot_sensitivity(results, trial, PARAM)
    rows = report.figure_rows(results)
    assert len(fig.axes) == rows["panel"].nunique()
    for ax, (panel, d) in zip(fig.axes, rows.groupby("panel")):
        markers = next(line for line in ax.get_lines() if line.get_marker() == "s")
        assert np.allclose(markers.get_xdata(), d["estimate"])
        segs = ax.collections[0].get_segments()
        assert np.allclose([s[0][0] for s in segs], d["lower"]) and np.allclose([s[1][0] for s in segs], d["upper"])
        reference = next(line for line in ax.get_lines() if line.get_linestyle() == "--")
        assert reference.get_xdata()[0] == (0.5 if panel == 1 else 0.0)
        assert [t.get_text().split("\n")[0] for t in ax.get_yticklabels()] == list(d["analysis"])
        texts = [t.get_text() for t in ax.texts]
        assert texts == [f"{r.estimate:.2f} ({r.lower:.2f} to {r.upper:.2f})" for r in d.itertuples()]
    assert trial.endpoint(PARAM).unit in fig.axes[0].get_xlabel()
    assert "Win probability" in fig.axes[-1].get_xlabel()


def test_runs_on_the_sister_trial_with_one_followup_visit():
    c = load_cohort("synthetic", "NCT06242405")
    assert len(c.trial.followup_visits) == 1
    a = sens.sensitivity_analyses(c.adlb, c.adsl, c.trial, PARAM, m=3)
    res = a["results"]
    assert res.loc[res["analysis"] != sens.TIPPING_POINT, "estimate"].notna().all()
    assert plots.plot_sensitivity(res, c.trial, PARAM).axes
    events = survival.intercurrent_events(c.adsl, c.adlb, c.trial)
    assert set(events["Visit"]) == {v.label for v in c.trial.visits}


def test_worst_rank_counts_add_up(analyses, adam, trial):
    counts = worst_rank.worst_rank_counts(analyses["scores"], trial)
    arms = [a.label for a in trial.arm_order]
    assert counts[arms].to_numpy().sum() == len(analyses["wide"])
    deaths = counts.set_index("CATEGORY").loc["death", arms].sum()
    assert deaths <= adam["adsl"]["DTHFL"].eq("Y").sum()


def test_prose_helpers(trial):
    control, experimental = [a.label for a in trial.arm_order]
    row = pd.Series({"measure": sens.DIFFERENCE, "estimate": -1.234, "lower": -2.5, "upper": 0.04, "p_value": 0.0612,
                     "analysis": sens.MULTIPLE_IMPUTATION, "contrast": f"{experimental} - {control}"})
    assert report.result_text(row, "points") == "difference -1.23 points (95% CI -2.50 to 0.04; P = 0.061)"
    win = row.copy()
    win[["measure", "estimate", "lower", "upper", "p_value", "analysis", "contrast"]] = [
        sens.WIN_PROBABILITY, 0.8, 0.6, 0.95, 0.0004, sens.WORST_RANK, f"{experimental} vs {control}"]
    assert report.result_text(win) == "win probability 0.80 (95% CI 0.60 to 0.95; P < 0.001)"
    assert report.analysis_conclusion(win, 1, trial.alpha) == "favours experimental"
    both = pd.DataFrame([row, win])
    assert "conclusions differ" in report.agreement_sentence(both, trial, PARAM)
    win["p_value"] = 0.3
    assert "same conclusion at the 5% level: no significant difference" in report.agreement_sentence(pd.DataFrame([row, win]), trial, PARAM)
    lenient = dataclasses.replace(trial, alpha=0.1)
    assert "conclusions differ at the 10% level" in report.agreement_sentence(pd.DataFrame([row, win]), lenient, PARAM), \
        "the level is the trial's alpha: P = 0.061 is significant at 0.1, P = 0.3 is not"
    tp = {"delta": 2.5, "from_conclusion": "favours experimental", "to_conclusion": "no significant difference", "grid_max": 10}
    assert "2.50 points higher (worse)" in report.tipping_sentence(tp, trial, PARAM, experimental)
    assert "10 points higher" in report.tipping_sentence(tp | {"delta": np.nan}, trial, PARAM, experimental)


# ------------------------------------------------------------------ identity with the stored reference

REFERENCE = Path(__file__).parent / "fixtures" / "sensitivity_reference"


def _stored_outputs(a: dict) -> dict[str, pd.DataFrame]:
    """The outputs that fixtures/sensitivity_reference/make_reference.py stores, through the same CSV
    round trip (17 significant digits: exact for float64)."""
    results = a["results"]
    frames = {"completed": a["completed"][["IMP", "USUBJID", "TRT01P", "AVISIT", "CHG", "IMPUTED"]], "mi": a["mi"],
              "grid": a["grid"], "tipping": pd.DataFrame([{"TRT01P": arm} | t for arm, t in a["tipping"].items()]),
              "scores": a["scores"], "worst_rank": a["worst_rank"], "results": results[results["analysis"] != sens.PRIMARY]}
    return {name: pd.read_csv(io.StringIO(f.to_csv(index=False, float_format="%.17g"))) for name, f in frames.items()}


def assert_same_as_reference(new: pd.DataFrame, ref: pd.DataFrame, label: str) -> None:
    """Same columns, rows and text; every number within its quantity's absolute tolerance (tests/tolerances.py)."""
    assert_frame_close(new, ref, label)


@pytest.fixture(scope="module")
def book_cohort():
    return load_cohort()


@pytest.fixture(params=["cohort", "clean", "cohort_alb"])
def reference_case(request, book_cohort, adam, trial):
    """A stored reference's name and the call that made it: the chapter's (book cohort, key secondary
    endpoint), the tests' clean export, and the cohort's albumin (its tipping point is reached)."""
    c = book_cohort
    inputs = {"cohort": (c.adlb, c.adsl, c.trial, c.trial.key_secondary), "clean": (adam["adlb"], adam["adsl"], trial, PARAM),
              "cohort_alb": (c.adlb, c.adsl, c.trial, "ALB")}
    return request.param, inputs[request.param]


def test_same_results_as_the_stored_reference(reference_case):
    name, inputs = reference_case
    outputs = _stored_outputs(sens.sensitivity_analyses(*inputs))
    assert outputs["completed"]["IMPUTED"].any() and outputs["grid"]["delta"].nunique() > 1
    for table, new in outputs.items():
        assert_same_as_reference(new, pd.read_csv(REFERENCE / f"{name}_{table}.csv"), f"{name} {table}")


def test_the_stored_reference_reaches_a_tipping_point():
    tp = pd.read_csv(REFERENCE / "cohort_alb_tipping.csv").iloc[0]
    assert np.isfinite(tp["delta"]) and tp["p_value"] == pytest.approx(0.05, abs=1e-6)


def test_the_reference_check_sees_a_change_beyond_the_tolerance():
    ref = pd.read_csv(REFERENCE / "cohort_mi.csv")
    assert_same_as_reference(ref.copy(), ref, "unchanged")
    for column in ("estimate", "se", "df", "p_value", "fmi_lambda"):
        assert_same_as_reference(ref.assign(**{column: ref[column] * (1 + 1e-12)}), ref, column)
        with pytest.raises(AssertionError):
            assert_same_as_reference(ref.assign(**{column: ref[column] + 2 * COLUMNS[column]}), ref, column)
    with pytest.raises(AssertionError):
        assert_same_as_reference(ref.assign(n_imputed=ref["n_imputed"] + 1), ref, "n_imputed")
    tiny = pd.read_csv(REFERENCE / "cohort_alb_tipping.csv")
    assert_same_as_reference(tiny.assign(lower=tiny["lower"] + 1e-12), tiny, "a residue near zero keeps no relative digit")
    with pytest.raises(AssertionError):
        assert_same_as_reference(tiny.assign(lower=tiny["lower"] + 2 * COLUMNS["lower"]), tiny, "absolute on a residue")
    with pytest.raises(AssertionError):
        assert_same_as_reference(ref.assign(TRT01P="other"), ref, "text")
