"""Outcomes: summaries against numpy, ANCOVA against least squares, MMRM against the ANCOVA where
they must agree, back-transformation, fallback reporting, Child-Pugh shift, Holm, and the book
finding a large simulated effect on one endpoint and not on the others."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.analysis import mmrm, outcomes
from helpers.data.adam import analysis_records, build_adam
from helpers.data.loading import load_export
from helpers.trial import Stratum, load_trial
from helpers.data.simulation import simulate_export, write_export
from helpers.report import outcomes as report
from helpers.report.prose import format_p


def _tiny_adlb(trial, paramcd: str, rows: list[tuple]) -> pd.DataFrame:
    """ADLB records (subject, arm code, week, AVAL) with BASE and CHG derived as ADaM does."""
    labels = {v.week: v.label for v in trial.visits}
    d = pd.DataFrame(rows, columns=["USUBJID", "ARM", "AVISITN", "AVAL"])
    d["TRT01P"] = d["ARM"].map(trial.arm_labels)
    d["AVISIT"] = d["AVISITN"].map(labels)
    d["PARAMCD"] = paramcd
    d["BASE"] = d["USUBJID"].map(d[d["AVISITN"] == 0].set_index("USUBJID")["AVAL"])
    d["CHG"] = (d["AVAL"] - d["BASE"]).where(d["AVISITN"] > 0)
    return d


def _random_adlb(trial, paramcd: str, n: int, seed: int, weeks=None, log=False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weeks = weeks or [v.week for v in trial.visits]
    arms = [trial.arm_codes[i % len(trial.arms)] for i in range(n)]
    rows = []
    for i, arm in enumerate(arms):
        base = rng.normal(3.5, 0.6)
        for w in weeks:
            y = base + (0.4 * w / 24 * (arm != trial.control_arm)) + rng.normal(0, 0.3) if w else base
            rows.append((f"S{i:03d}", arm, w, float(np.exp(y)) if log else float(y)))
    return _tiny_adlb(trial, paramcd, rows)


# ------------------------------------------------------------------ lab by visit


def test_lab_by_visit_matches_numpy(adam, trial):
    table = outcomes.lab_by_visit(adam["adlb"], trial)
    e, v, arm = trial.endpoints[0], trial.visits[-1], trial.arms[-1]
    adlb = adam["adlb"]
    vals = adlb.loc[(adlb["PARAMCD"] == e.code) & (adlb["AVISITN"] == v.week) & (adlb["TRT01P"] == arm.label), "CHG"]
    row = table[(table["PARAMCD"] == e.code) & (table["AVISITN"] == v.week) & (table["TRT01P"] == arm.label)
                & (table["variable"] == "CHG")].iloc[0]
    assert row["n"] == vals.notna().sum()
    assert row["mean"] == pytest.approx(vals.mean()) and row["sd"] == pytest.approx(vals.std())
    assert [row["q1"], row["median"], row["q3"]] == pytest.approx(np.percentile(vals.dropna(), [25, 50, 75]))
    base = table[(table["AVISITN"] == 0) & (table["variable"] == "AVAL") & (table["PARAMCD"] == e.code)]
    assert base["n"].sum() == adlb[(adlb["PARAMCD"] == e.code) & (adlb["ABLFL"] == "Y")].shape[0]
    assert not ((table["AVISITN"] == 0) & (table["variable"] == "CHG")).any()
    assert set(table["PARAMCD"]) == {x.code for x in trial.endpoints}


def test_lab_by_visit_report_formats_mean_sd_with_one_more_decimal(trial):
    adlb = _tiny_adlb(trial, "ALB", [("A", "PV", 0, 30.0), ("A", "PV", 4, 32.0), ("B", "PV", 0, 34.0),
                                     ("B", "PV", 4, 35.0), ("C", "HA", 0, 31.0), ("C", "HA", 4, 36.0)])
    summary = outcomes.lab_by_visit(adlb, trial)
    header = {a.label: a.label for a in trial.arms}
    rep = report.lab_by_visit_report(summary, adlb, trial, header)
    alb = rep[(rep["Endpoint"] == trial.endpoint("ALB").label_with_unit) & (rep["Visit"] == trial.visits[0].label)]
    pv = alb[alb["Arm"] == trial.arm_labels["PV"]].iloc[0]
    assert pv["Value: n"] == "2" and pv["Value: mean (SD)"] == f"32.0 ({np.std([30, 34], ddof=1):.1f})"
    assert pv["Value: median [Q1, Q3]"] == "32.0 [31.0, 33.0]"
    assert pv["Change: n"] == "" and pv["Change: mean (SD)"] == ""
    week4 = rep[(rep["Endpoint"] == trial.endpoint("ALB").label_with_unit) & (rep["Visit"] == trial.visits[1].label)]
    assert week4.loc[week4["Arm"] == trial.arm_labels["HA"], "Change: mean (SD)"].item() == "5.0"


def test_geometric_mean_ci(adam, trial):
    table = outcomes.mean_ci_by_visit(adam["adlb"], trial)
    e = next(x for x in trial.endpoints if x.log)
    v, arm = trial.visits[1], trial.arms[0]
    adlb = adam["adlb"]
    vals = np.log(adlb.loc[(adlb["PARAMCD"] == e.code) & (adlb["AVISITN"] == v.week) & (adlb["TRT01P"] == arm.label), "AVAL"])
    lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=vals.mean(), scale=stats.sem(vals))
    row = table[(table["PARAMCD"] == e.code) & (table["AVISITN"] == v.week) & (table["TRT01P"] == arm.label)].iloc[0]
    assert [row["mean"], row["lower"], row["upper"]] == pytest.approx(np.exp([vals.mean(), lo, hi]))
    assert row["statistic"] == "geometric mean"


# ------------------------------------------------------------------ ANCOVA


def _lstsq(y, x):
    """OLS by hand: coefficients, SEs and residual df."""
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    df = len(y) - x.shape[1]
    s2 = np.sum((y - x @ beta) ** 2) / df
    se = np.sqrt(np.diag(s2 * np.linalg.inv(x.T @ x)))
    return beta, se, df


def test_ancova_equals_least_squares(trial):
    adlb = _random_adlb(trial, "ALB", 20, seed=1)
    table = outcomes.ancova(adlb, trial)
    v = trial.followup_visits[-1]
    d = adlb[adlb["AVISITN"] == v.week]
    x = np.column_stack([np.ones(len(d)), d["TRT01P"] != trial.arm_labels[trial.control_arm], d["BASE"]]).astype(float)
    beta, se, df = _lstsq(d["CHG"].to_numpy(), x)
    row = table[(table["PARAMCD"] == "ALB") & (table["AVISITN"] == v.week)].iloc[0]
    assert row["estimate"] == pytest.approx(beta[1]) and row["se"] == pytest.approx(se[1]) and row["df"] == df
    q = stats.t.ppf(0.975, df)
    assert [row["lower"], row["upper"]] == pytest.approx([beta[1] - q * se[1], beta[1] + q * se[1]])
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(beta[1] / se[1]), df))
    assert row["scale"] == outcomes.ORIGINAL_SCALE and row["n"] == len(d)


def test_ancova_log_endpoint_is_ratio_of_geometric_means(trial):
    adlb = _random_adlb(trial, "TBIL", 20, seed=2, log=True)
    row = outcomes.ancova(adlb, trial).query("PARAMCD == 'TBIL'").iloc[-1]
    d = adlb[adlb["AVISITN"] == row["AVISITN"]]
    x = np.column_stack([np.ones(len(d)), d["TRT01P"] != trial.arm_labels[trial.control_arm], np.log(d["BASE"])]).astype(float)
    beta, se, df = _lstsq((np.log(d["AVAL"]) - np.log(d["BASE"])).to_numpy(), x)
    q = stats.t.ppf(0.975, df)
    assert row["estimate"] == pytest.approx(np.exp(beta[1]))
    assert [row["lower"], row["upper"]] == pytest.approx(np.exp([beta[1] - q * se[1], beta[1] + q * se[1]]))
    assert row["se"] == pytest.approx(se[1]) and row["scale"] == outcomes.LOG_SCALE


def test_ancova_adjusts_for_strata(trial):
    stratified = dataclasses.replace(trial, randomization=dataclasses.replace(trial.randomization, strata=(Stratum("SEX"),)))
    adlb = _random_adlb(trial, "ALB", 24, seed=3)
    subjects = adlb["USUBJID"].unique()
    adsl = pd.DataFrame({"USUBJID": subjects, "SEX": ["F" if i % 3 else "M" for i in range(len(subjects))]})
    row = outcomes.ancova(adlb, stratified, adsl).query("PARAMCD == 'ALB'").iloc[-1]
    d = adlb[adlb["AVISITN"] == row["AVISITN"]].merge(adsl, on="USUBJID")
    x = np.column_stack([np.ones(len(d)), d["TRT01P"] != trial.arm_labels[trial.control_arm],
                         d["SEX"] == "M", d["BASE"]]).astype(float)
    beta, se, _ = _lstsq(d["CHG"].to_numpy(), x)
    assert row["estimate"] == pytest.approx(beta[1]) and row["se"] == pytest.approx(se[1])
    with pytest.raises(ValueError, match="stratification"):
        outcomes.ancova(adlb, stratified)


def test_ancova_visit_without_an_arm_is_missing_not_an_error(trial):
    adlb = _random_adlb(trial, "ALB", 12, seed=4)
    last = trial.followup_visits[-1].week
    adlb = adlb[~((adlb["AVISITN"] == last) & (adlb["TRT01P"] != trial.arm_labels[trial.control_arm]))]
    row = outcomes.ancova(adlb, trial).query(f"PARAMCD == 'ALB' and AVISITN == {last}").iloc[0]
    assert np.isnan(row["estimate"]) and np.isnan(row["p_value"])


# ------------------------------------------------------------------ MMRM


def test_mmrm_equals_ancova_with_complete_data(trial):
    """Complete data, unstructured Sigma and visit-specific arm and baseline effects: GLS equals OLS
    visit by visit (identical regressors), and the REML Sigma is the residual cross-product / (n - p),
    so estimates and SEs equal the per-visit ANCOVA, and the Satterthwaite df is n - p."""
    adlb = _random_adlb(trial, "ALB", 24, seed=5)
    mm = outcomes.mmrm_table(adlb, trial).query("PARAMCD == 'ALB'").reset_index(drop=True)
    an = outcomes.ancova(adlb, trial).query("PARAMCD == 'ALB'").reset_index(drop=True)
    assert list(mm["AVISIT"]) == [v.label for v in trial.followup_visits]
    assert mm["estimate"].to_numpy() == pytest.approx(an["estimate"].to_numpy(), rel=1e-5)
    assert mm["se"].to_numpy() == pytest.approx(an["se"].to_numpy(), rel=1e-3)
    assert mm["df"].to_numpy() == pytest.approx(an["df"].to_numpy(), abs=1.0)
    assert (mm["covariance"] == "us").all() and (mm["n"] == an["n"]).all()


def test_mmrm_log_endpoint_back_transformed(trial):
    adlb = _random_adlb(trial, "TBIL", 24, seed=6, log=True)
    fit = outcomes.fit_endpoint_mmrm(adlb, trial, "TBIL")
    log_diff = fit.lsmean_differences("TRT01P", by="AVISIT", reference=trial.arm_labels[trial.control_arm])
    table = outcomes.mmrm_table(adlb, trial).query("PARAMCD == 'TBIL'")
    assert table["estimate"].to_numpy() == pytest.approx(np.exp(log_diff["estimate"].to_numpy()))
    assert table["lower"].to_numpy() == pytest.approx(np.exp(log_diff["lower"].to_numpy()))
    assert table["p_value"].to_numpy() == pytest.approx(log_diff["p_value"].to_numpy())
    assert (table["scale"] == outcomes.LOG_SCALE).all()
    assert fit.coef.loc["BASE", "estimate"] != 0 and (adlb["AVAL"] > 0).all()


def test_mmrm_single_followup_visit_is_the_ancova(trial):
    """The sister trial's design (one follow-up visit): the MMRM reduces to the ANCOVA exactly."""
    one = dataclasses.replace(trial, visits=(trial.visits[0], trial.visits[-1]))
    adlb = _random_adlb(one, "ALB", 20, seed=7)
    mm = outcomes.mmrm_table(adlb, one).query("PARAMCD == 'ALB'").iloc[0]
    an = outcomes.ancova(adlb, one).query("PARAMCD == 'ALB'").iloc[0]
    assert mm["AVISIT"] == one.visits[-1].label
    assert mm["estimate"] == pytest.approx(an["estimate"], rel=1e-6)
    assert mm["se"] == pytest.approx(an["se"], rel=1e-3) and mm["df"] == pytest.approx(an["df"], abs=0.5)


def test_mmrm_fallback_is_reported(trial, monkeypatch):
    adlb = _random_adlb(trial, "ALB", 24, seed=8)
    real = mmrm._fit_structure

    def no_us(struct, *args, **kwargs):
        if struct.name == "us":
            raise mmrm._NotConverged("us: forced failure")
        return real(struct, *args, **kwargs)

    monkeypatch.setattr(mmrm, "_fit_structure", no_us)
    table = outcomes.mmrm_table(adlb, trial).query("PARAMCD == 'ALB'")
    assert (table["covariance"] == "toeph (fallback from us)").all()
    assert table["covariance_note"].str.contains("forced failure").all()
    assert outcomes.fallbacks(table)["PARAMCD"].tolist() == ["ALB"]


def test_mmrm_not_estimable_keeps_rows(trial, monkeypatch):
    adlb = _random_adlb(trial, "ALB", 12, seed=9)

    def nothing(*args, **kwargs):
        raise mmrm._NotConverged("forced")

    monkeypatch.setattr(mmrm, "_fit_structure", nothing)
    table = outcomes.mmrm_table(adlb, trial).query("PARAMCD == 'ALB'")
    assert len(table) == len(trial.followup_visits) and table["estimate"].isna().all()
    assert (table["covariance"] == "not estimable").all()


def test_model_tables_share_columns(adam, trial):
    an = outcomes.ancova(adam["adlb"], trial, adam["adsl"])
    mm = outcomes.mmrm_table(adam["adlb"], trial, adam["adsl"])
    assert list(an.columns) == outcomes.MODEL_COLUMNS
    assert list(mm.columns[:len(outcomes.MODEL_COLUMNS)]) == outcomes.MODEL_COLUMNS
    assert {"PARAMCD", "AVISIT", "estimate", "se", "df", "lower", "upper", "p_value", "scale", "covariance"} <= set(mm)
    assert len(an) == len(mm) == len(trial.endpoints) * len(trial.followup_visits) * (len(trial.arms) - 1)
    assert (mm["lower"] < mm["estimate"]).all() and (mm["estimate"] < mm["upper"]).all()


# ------------------------------------------------------------------ classes of a derived parameter (Child-Pugh)


def _cp_adlb(trial, scores_by_subject: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [(s, arm, w, float(p)) for s, (arm, pts) in scores_by_subject.items() for w, p in pts.items()]
    adlb = _tiny_adlb(trial, "CPSCORE", rows)
    adsl = pd.DataFrame({"USUBJID": list(scores_by_subject),
                         "TRT01P": [trial.arm_labels[a] for a, _ in scores_by_subject.values()]})
    return adlb, adsl


def test_child_pugh_shift_counts(trial):
    last = trial.visits[-1].week
    adlb, adsl = _cp_adlb(trial, {"A1": ("PV", {0: 6, last: 8}), "A2": ("PV", {0: 7, last: 6}),
                                  "A3": ("PV", {0: 7}), "B1": ("HA", {0: 10, last: 6}),
                                  "B2": ("HA", {0: 9, last: 9})})
    shift = outcomes.class_shift(adlb, adsl, trial, "CPSCORE").set_index(["TRT01P", "BASECLASS", "POSTCLASS"])["n"]
    pv, ha = trial.arm_labels["PV"], trial.arm_labels["HA"]
    assert shift[(pv, "A", "B")] == 1 and shift[(pv, "B", "A")] == 1 and shift[(pv, "B", outcomes.NOT_ASSESSED)] == 1
    assert shift[(ha, "C", "A")] == 1 and shift[(ha, "B", "B")] == 1
    assert shift.sum() == 5 and shift.groupby(level=0).sum()[pv] == 3
    shown = report.shift_report(outcomes.class_shift(adlb, adsl, trial, "CPSCORE"), {pv: pv, ha: ha})
    assert shown.columns.name is None and shown["Total"].sum() == 5
    assert shown.loc[(shown["Arm"] == pv) & (shown["Baseline class"] == "B"), "Total"].item() == 2


def test_proportion_class_a(trial):
    adlb, adsl = _cp_adlb(trial, {"A1": ("PV", {0: 5}), "A2": ("PV", {0: 6}), "A3": ("PV", {0: 7}),
                                  "A4": ("PV", {0: 12}), "B1": ("HA", {0: 8})})
    p = outcomes.proportion_best_class(adlb, adsl, trial, "CPSCORE").set_index(["TRT01P", "AVISITN"])
    row = p.loc[(trial.arm_labels["PV"], 0)]
    assert row["n_assessed"] == 4 and row["n_class_a"] == 2 and row["proportion"] == 0.5
    z = stats.norm.ppf(0.975)
    centre = (0.5 + z * z / 8) / (1 + z * z / 4)
    half = z * np.sqrt(0.25 / 4 + z * z / 64) / (1 + z * z / 4)
    assert [row["lower"], row["upper"]] == pytest.approx([centre - half, centre + half])
    assert p.loc[(trial.arm_labels["PV"], trial.visits[1].week), "n_assessed"] == 0


# ------------------------------------------------------------------ Holm


def test_holm_by_hand():
    assert outcomes.holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert outcomes.holm_adjust([0.02, np.nan, 0.5]) == pytest.approx([0.04, np.nan, 0.5], nan_ok=True)


def test_holm_table_is_one_family_at_the_visit(adam, trial):
    mm = outcomes.mmrm_table(adam["adlb"], trial, adam["adsl"])
    holm = outcomes.holm_table(mm, trial.last_visit.label)
    assert len(holm) == len(trial.endpoints) and (holm["p_holm"] >= holm["p_value"] - 1e-15).all()
    k = len(holm)
    assert holm["p_holm"].min() == pytest.approx(min(1.0, k * holm["p_value"].min()))


def test_outcome_results_has_every_table(adam, trial):
    res = outcomes.outcome_results(adam["adlb"], adam["adsl"], trial)
    assert set(res) == {"lab_by_visit", "ancova", "mmrm", "holm", "cpscore_class_shift", "cpscore_best_class"}
    shift = res["cpscore_class_shift"]
    assert shift.groupby("TRT01P")["n"].sum().to_dict() == adam["adsl"]["TRT01P"].value_counts().to_dict()


def test_format_p():
    assert [format_p(p) for p in (0.0004, 0.0123, 0.5, np.nan)] == ["<0.001", "0.012", "0.500", ""]


# ------------------------------------------------------------------ the book finds a large effect


SEEDS = (11, 12, 13, 14, 15)


def _analyse_simulated(trial, seed, tmp_path):
    folder = tmp_path / f"seed{seed}"
    write_export(simulate_export(trial, seed=seed, effects={"HA": {"TBIL": -1.0}}), folder)
    adam = build_adam(load_export(folder, trial), trial)
    adlb = analysis_records(adam["adlb"])
    last = trial.followup_visits[-1].label
    labs = [e.code for e in trial.lab_endpoints]
    mm = outcomes.mmrm_table(adlb, trial, adam["adsl"])
    an = outcomes.ancova(adlb, trial, adam["adsl"])
    return {name: outcomes.holm_table(t[t["PARAMCD"].isin(labs)], last).set_index("PARAMCD")
            for name, t in (("mmrm", mm), ("ancova", an))}


def test_large_effect_on_bilirubin_found_and_no_other(trial, tmp_path):
    """TBIL lowered by exp(-1) in the hepatic-artery arm, no effect on the other laboratory endpoints.
    MELD and Child-Pugh score contain bilirubin and are expected to move, so the null family is the
    other laboratory endpoints. Criterion per seed: TBIL significant and lower after Holm, and no
    other endpoint significant after Holm; it must hold in a majority of seeds for each model."""
    results = [_analyse_simulated(trial, s, tmp_path) for s in SEEDS]
    for model in ("mmrm", "ancova"):
        found = 0
        unadjusted_false = {}
        for r in results:
            t = r[model]
            tbil_ok = t.loc["TBIL", "p_holm"] < 0.05 and t.loc["TBIL", "estimate"] < 1
            others = t.drop(index="TBIL")
            found += tbil_ok and (others["p_holm"] >= 0.05).all()
            for code, p in others["p_value"].items():
                unadjusted_false[code] = unadjusted_false.get(code, 0) + (p < 0.05)
        assert found > len(SEEDS) / 2, f"{model}: effect found cleanly in {found} of {len(SEEDS)} seeds"
        assert max(unadjusted_false.values()) <= len(SEEDS) // 2, f"{model}: {unadjusted_false}"


def test_effect_text_and_fallback_sentence(adam, trial):
    row = pd.Series({"estimate": -0.994, "lower": -2.341, "upper": 0.352, "p_value": 0.1408,
                     "scale": outcomes.ORIGINAL_SCALE})
    assert report.effect_text(row, "points") == "difference -0.99 points (95% CI -2.34 to 0.35; P = 0.141)"
    ratio = row.copy()
    ratio.update({"estimate": 0.79, "lower": 0.64, "upper": 0.98, "p_value": 0.0004, "scale": outcomes.LOG_SCALE})
    assert report.effect_text(ratio, "U/L") == "ratio of geometric means 0.79 (95% CI 0.64 to 0.98; P < 0.001)"
    table = pd.DataFrame({"PARAMCD": ["A", "A", "B"], "PARAM": ["Alpha", "Alpha", "Beta"],
                          "covariance": ["us", "us", "ar1 (fallback from us)"], "covariance_note": ["", "", "x"]})
    assert "Beta: AR(1)" in report.fallback_sentence(table)
    assert "no fallback" in report.fallback_sentence(table.iloc[:2])


def test_report_layouts_keep_every_row_and_format_intervals():
    from helpers.report.outcomes import best_class_report, mean_ci_report

    summary = pd.DataFrame({"PARAM": ["ALT (U/L)"], "statistic": ["Geometric mean"], "TRT01P": ["A"], "AVISIT": ["Week 4"],
                            "n": [5], "mean": [12.346], "lower": [10.0], "upper": [15.5]})
    out = mean_ci_report(summary, {"A": "A (N=6)"})
    assert out.iloc[0].tolist() == ["ALT (U/L)", "Geometric mean", "A (N=6)", "Week 4", 5, 12.35, "10.00 to 15.50"]
    class_a = pd.DataFrame({"TRT01P": ["A", "A"], "AVISIT": ["Baseline", "Week 4"], "n_class_a": [1, 0],
                            "n_assessed": [4, 0], "proportion": [0.25, float("nan")], "lower": [0.046, float("nan")],
                            "upper": [0.699, float("nan")]})
    out = best_class_report(class_a, {"A": "A (N=4)"}, "A")
    assert out["Class A, n / assessed (%)"].tolist() == ["1 / 4 (25%)", "0 / 0"]
    assert out["95% CI (%)"].tolist() == ["5 to 70", ""]


def test_effect_text_is_the_books_estimate_text():
    row = pd.Series({"estimate": np.nan, "lower": np.nan, "upper": np.nan, "p_value": np.nan,
                     "scale": outcomes.ORIGINAL_SCALE})
    assert report.effect_text(row, "points") == "not estimable"
    unitless = pd.Series({"estimate": 1.5, "lower": 0.5, "upper": 2.5, "p_value": 0.02, "scale": outcomes.ORIGINAL_SCALE})
    assert report.effect_text(unitless, "1") == "difference 1.50 (95% CI 0.50 to 2.50; P = 0.020)"


def test_model_report_prints_estimates_p_values_and_holm():
    model = pd.DataFrame({"PARAM": ["A (U/L)", "B"], "AVISIT": ["Week 24"] * 2, "contrast": ["X - Y"] * 2,
                          "scale": [outcomes.LOG_SCALE, outcomes.ORIGINAL_SCALE], "estimate": [0.794, np.nan],
                          "lower": [0.641, np.nan], "upper": [0.983, np.nan], "n": [30, 0], "df": [27.04, np.nan],
                          "p_value": [0.0004, np.nan], "p_holm": [0.0008, np.nan]})
    out = report.model_report(model)
    assert out["Effect"].tolist() == ["ratio", "difference"]
    assert out["Estimate (95% CI)"].tolist() == ["0.79 (0.64 to 0.98)", "not estimable"]
    assert out["df"].tolist() == ["27.0", ""] and out["P"].tolist() == ["<0.001", ""]
    assert out["P (Holm)"].tolist() == ["<0.001", ""]
    assert list(report.holm_report(model).columns) == ["Endpoint", "Effect", "Estimate (95% CI)", "n", "df", "P", "P (Holm)"]


def test_covariance_names_read_codes_and_leave_the_rest():
    assert report.covariance_name("toeph") == "heterogeneous Toeplitz"
    assert report.covariance_name("ar1 (fallback from us)") == "ar1 (fallback from us)"


def test_holm_significant_gives_endpoint_codes():
    holm = pd.DataFrame({"PARAMCD": ["TBIL", "ALB", "MELD"], "p_holm": [0.01, 0.2, np.nan]})
    assert outcomes.holm_significant(holm, 0.05) == ["TBIL"]
    assert outcomes.holm_significant(holm, alpha=0.5) == ["TBIL", "ALB"]


def test_intercurrent_counts_follow_the_reason_for_ending():
    adsl = pd.DataFrame({"DTHFL": ["Y", "N", "N", "N", "N"], "ICE1FL": ["N", "Y", "N", "N", "N"],
                         "DCSREAS": ["DEATH", "LIVER TRANSPLANT", "WITHDRAWAL BY SUBJECT", "LOST TO FOLLOW-UP", None]})
    counts = outcomes.intercurrent_counts(adsl, load_trial("NCT06984497"))
    assert counts == {"n_deaths": 1, "n_transplant": 1, "n_withdrawn": 2}
    assert all(type(v) is int for v in counts.values())


def test_chapter_numbers_glue_every_phrase_of_the_chapter(adam, trial):
    res = outcomes.outcome_results(adam["adlb"], adam["adsl"], trial)
    numbers = report.chapter_numbers(res, adam["adsl"], trial, "synthetic cohort")
    assert list(numbers) == ["source", "population", "n_per_arm", "control", "experimental", "followup", "last_visit", "n_endpoints",
                             "primary_label", "key_label", "log_endpoints", "log_scale_sentence", "role", "hierarchy", "death_role",
                             "primary_effect_sentence", "n_deaths", "n_withdrawn", "intercurrent_text", "hypothetical_condition", "key_effect", "key_covariance", "key_sentence",
                             "fallback_sentence", "n_holm", "holm_significant", "class_name", "best_class",
                             "alpha_level", "class_a_last"]
    assert numbers["control"] == trial.control.label
    assert numbers["alpha_level"] == "5%"
    assert numbers["last_visit"] == trial.last_visit.label.lower()
    assert numbers["key_label"] == "the change in MELD score at week 24"
    assert numbers["n_holm"] == len(res["holm"]) and numbers["n_endpoints"] == len(trial.endpoints)
    assert numbers["n_deaths"] == (adam["adsl"]["DTHFL"] == "Y").sum()
    assert numbers["key_effect"] == report.key_secondary_numbers(res["mmrm"], trial)["key_effect"]
    assert numbers["class_a_last"] == report.best_class_text(res, trial.last_visit.label, trial)
    assert (numbers["class_name"], numbers["best_class"]) == ("Child-Pugh class", "A")
    assert report.best_class_text({}, trial.last_visit.label, trial) == report.NO_CLASSES
