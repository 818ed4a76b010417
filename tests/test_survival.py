"""Survival helpers against hand computations, direct maximisation, the raw events file and the simulator."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from statsmodels.duration.hazard_regression import PHReg

from helpers.analysis import cohort, survival
from helpers.data.simulation import simulate_export, write_export
from helpers.pipeline import load_cohort
from helpers.report import plots
from helpers.report import survival as report
from helpers.report.cohort import arm_header
from helpers.report.prose import estimate_text, format_p
from helpers.trial import load_trial

Z = stats.norm.ppf(0.975)


def tiny_adtte(trial, time, event, arm_codes) -> pd.DataFrame:
    """An ADTTE-shaped frame (OS) from times, event indicators and arm codes."""
    labels = [trial.arm_labels[a] for a in arm_codes]
    return pd.DataFrame({"USUBJID": [f"S{i}" for i in range(len(time))], "TRT01P": labels, "PARAMCD": "OS",
                         "AVAL": pd.array(time, dtype="Int64"), "CNSR": 1 - np.asarray(event),
                         "EVNTDESC": np.where(np.asarray(event) == 1, "DEATH", "LAST KNOWN ALIVE")})


def test_kaplan_meier_and_loglog_ci_equal_hand_computation():
    # times 1 2 2+ 3 4+ 5 (+ censored)
    # t=1: n=6 d=1 S=5/6;  t=2: n=5 d=1 S=5/6*4/5=2/3 (one censored at 2 leaves after the death)
    # t=3: n=3 d=1 S=2/3*2/3=4/9;  t=4: censored, S stays 4/9;  t=5: n=1 d=1 S=0
    # Greenwood at t=3: sum d/(n(n-d)) = 1/30 + 1/20 + 1/6 = 1/4, SE = S * sqrt(1/4) = 2/9
    # log-log: sd = sqrt(1/4) / |log 4/9|, CI = (S^exp(z sd), S^exp(-z sd))
    km = survival.kaplan_meier([1, 2, 2, 3, 4, 5], [1, 1, 0, 1, 0, 1])
    assert km["TIME"].tolist() == [0, 1, 2, 3, 4, 5]
    assert km["N_RISK"].tolist() == [6, 6, 5, 3, 2, 1]
    assert km["N_EVENT"].tolist() == [0, 1, 1, 1, 0, 1]
    assert km["N_CENSOR"].tolist() == [0, 0, 1, 0, 1, 0]
    np.testing.assert_allclose(km["SURV"], [1, 5 / 6, 2 / 3, 4 / 9, 4 / 9, 0], atol=1e-12)
    row = km[km["TIME"] == 3].iloc[0]
    assert row["SE"] == pytest.approx(2 / 9)
    sd = 0.5 / abs(np.log(4 / 9))
    assert row["LCL"] == pytest.approx((4 / 9) ** np.exp(Z * sd))
    assert row["UCL"] == pytest.approx((4 / 9) ** np.exp(-Z * sd))
    assert row["LCL"] == pytest.approx(0.0662, abs=5e-5) and row["UCL"] == pytest.approx(0.7849, abs=5e-5)  # half a unit of the 4th decimal
    g1 = 1 / 30
    assert km.loc[km["TIME"] == 1, "SE"].iloc[0] == pytest.approx(5 / 6 * np.sqrt(g1))
    assert np.isnan(km["LCL"].iloc[0]) and np.isnan(km["LCL"].iloc[-1])


def test_kaplan_meier_without_events_stays_at_one():
    km = survival.kaplan_meier([3, 5, 5], [0, 0, 0])
    assert km["SURV"].tolist() == [1, 1, 1] and km["N_CENSOR"].tolist() == [0, 1, 2]


def _hand_logrank(time, event, group):
    """Mantel-Haenszel log-rank: sum over event times of O1 - E1 and n1 n0 d (n - d) / (n^2 (n - 1))."""
    time, event, group = map(np.asarray, (time, event, group))
    o_e = v = 0.0
    for t in np.unique(time[event == 1]):
        at = time >= t
        n, n1 = at.sum(), (at & (group == 1)).sum()
        d, d1 = ((time == t) & (event == 1)).sum(), ((time == t) & (event == 1) & (group == 1)).sum()
        o_e += d1 - d * n1 / n
        v += n1 * (n - n1) * d * (n - d) / (n ** 2 * (n - 1)) if n > 1 else 0.0
    return o_e ** 2 / v


def test_logrank_equals_hand_computation(trial):
    time = [2, 3, 3, 5, 6, 8, 9, 9, 11, 12, 4, 4, 7, 10, 13, 15, 15, 16]
    event = [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0]
    arm = [trial.control_arm] * 10 + [trial.experimental_arms[0].code] * 8
    d = tiny_adtte(trial, time, event, arm)
    lr = survival.logrank(d, trial)
    chisq = _hand_logrank(time, event, [a != trial.control_arm for a in arm])
    assert lr["CHISQ"] == pytest.approx(chisq, rel=1e-10)
    assert lr["PVALUE"] == pytest.approx(stats.chi2.sf(chisq, 1), rel=1e-10)


def _efron_loglik(beta, time, event, x):
    """Efron (1977) partial log-likelihood for one covariate."""
    ll = 0.0
    for t in np.unique(time[event == 1]):
        dead = (time == t) & (event == 1)
        risk = np.exp(beta * x[time >= t]).sum()
        tied = np.exp(beta * x[dead]).sum()
        d = dead.sum()
        ll += beta * x[dead].sum() - sum(np.log(risk - k / d * tied) for k in range(d))
    return ll


def test_cox_efron_equals_direct_maximisation(trial):
    time = np.array([2, 3, 3, 3, 5, 6, 6, 8, 9, 9, 4, 4, 6, 7, 9, 10, 12, 12])
    event = np.array([1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0])
    other = trial.experimental_arms[0].code
    arm = [trial.control_arm] * 10 + [other] * 8
    x = np.array([a == other for a in arm], dtype=float)
    fit = optimize.minimize_scalar(lambda b: -_efron_loglik(b, time, event, x), bounds=(-5, 5), method="bounded",
                                   options={"xatol": 1e-10})
    h = 1e-4
    info = -(_efron_loglik(fit.x + h, time, event, x) - 2 * _efron_loglik(fit.x, time, event, x)
             + _efron_loglik(fit.x - h, time, event, x)) / h ** 2
    se = 1 / np.sqrt(info)
    hr = survival.cox_hr(tiny_adtte(trial, time, event, arm), trial).iloc[0]
    assert hr["HR"] == pytest.approx(np.exp(fit.x), rel=1e-5)
    assert hr["LCL"] == pytest.approx(np.exp(fit.x - Z * se), rel=1e-4)
    assert hr["UCL"] == pytest.approx(np.exp(fit.x + Z * se), rel=1e-4)
    assert hr["PVALUE"] == pytest.approx(2 * stats.norm.sf(abs(fit.x / se)), rel=1e-4)
    breslow = PHReg(time.astype(float), x[:, None], status=event, ties="breslow").fit().params[0]
    assert abs(breslow - fit.x) > 1e-3, "the tiny data set must have ties on which Efron and Breslow differ"


def test_cox_not_estimable_without_events_in_an_arm(trial):
    other = trial.experimental_arms[0].code
    d = tiny_adtte(trial, [3, 5, 7, 9, 4, 6], [1, 1, 0, 0, 0, 0], [trial.control_arm] * 4 + [other] * 2)
    hr = survival.cox_hr(d, trial).iloc[0]
    assert np.isnan(hr["HR"]) and "no events" in hr["NOTE"] and trial.arm_labels[other] in hr["NOTE"]


def test_few_events_caution():
    assert "imprecise" in report.few_events_caution(4) and "4 event" in report.few_events_caution(4)
    assert report.few_events_caution(survival.FEW_EVENTS) == ""


def test_survival_at_horizon_and_difference_equal_hand_computation(trial):
    other = trial.experimental_arms[0].code
    h = trial.horizon_days
    # control: deaths at 10 and 50 among 4, others followed to the horizon: S = 3/4 * 2/3 = 1/2
    # other arm: one death at 20 among 5, one censored at 30: S = 4/5
    d = tiny_adtte(trial, [10, 50, h, h, 20, 30, h, h, h], [1, 1, 0, 0, 1, 0, 0, 0, 0],
                   [trial.control_arm] * 4 + [other] * 5)
    res = survival.survival_at_horizon(d, trial)
    s0, s1 = 0.5, 0.8
    se0 = s0 * np.sqrt(1 / (4 * 3) + 1 / (3 * 2))
    se1 = s1 * np.sqrt(1 / (5 * 4))
    np.testing.assert_allclose(res["ESTIMATE"], [s0, s1, s1 - s0] if trial.arm_codes[0] == trial.control_arm
                               else [s1, s0, s1 - s0])
    diff = res[res["STATISTIC"] == "difference"].iloc[0]
    assert diff["SE"] == pytest.approx(np.hypot(se0, se1))
    assert diff["LCL"] == pytest.approx(s1 - s0 - Z * np.hypot(se0, se1))


def _raw_events_within_horizon(export, trial, kinds):
    """First DEATH (or any of ``kinds``) per participant within the horizon, from the raw files."""
    ev = export["events"][export["events"]["event_type"].isin(kinds)]
    first = ev.sort_values("start_date").drop_duplicates("subject_id")
    rand = export["randomization"].set_index("subject_id")
    first = first.assign(day=(first["start_date"] - first["subject_id"].map(rand["rand_date"])).dt.days + 1,
                         arm=first["subject_id"].map(rand["arm"]).astype(str))
    return first[first["day"] <= trial.horizon_days]


def test_event_counts_equal_raw_events_file(export, adam, trial):
    counts = survival.event_counts(adam["adtte"], trial, "OS").set_index("ARM")
    deaths = _raw_events_within_horizon(export, trial, ["DEATH"])
    tx = export["events"][export["events"]["event_type"] == "TRANSPLANT"].set_index("subject_id")["start_date"]
    deaths = deaths[~(deaths["subject_id"].map(tx) < deaths["start_date"])]
    for arm in trial.arms:
        assert counts.loc[arm.label, "EVENTS"] == (deaths["arm"] == arm.code).sum()
        assert counts.loc[arm.label, "N"] == (export["randomization"]["arm"] == arm.code).sum()
    assert (counts["EVENTS"] + counts["CENSORED"] == counts["N"]).all()
    censor_cols = [col for col in counts if col.startswith("CENSORED: ")]
    assert (counts[censor_cols].sum(axis=1) == counts["CENSORED"]).all()
    tfs = survival.event_counts(adam["adtte"], trial, "TFS").set_index("ARM")
    first = _raw_events_within_horizon(export, trial, ["DEATH", "TRANSPLANT"])
    for arm in trial.arms:
        assert tfs.loc[arm.label, "EVENTS"] == (first["arm"] == arm.code).sum()


def test_fisher_table_classifies_every_participant(adam, trial):
    adtte, adsl = adam["adtte"], adam["adsl"]
    status = survival.status_at_horizon(adtte, adsl, trial)
    assert len(status) == len(adsl)
    fisher = survival.fisher_survivors(adtte, adsl, trial).iloc[0]
    control = trial.control.label
    per_arm = status.groupby("ARM")["STATUS"].value_counts().unstack(fill_value=0)
    table = [[per_arm.loc[fisher["ARM"]].get(survival.EVENT_FREE, 0), per_arm.loc[fisher["ARM"]].get(survival.EVENT, 0)],
             [per_arm.loc[control].get(survival.EVENT_FREE, 0), per_arm.loc[control].get(survival.EVENT, 0)]]
    assert fisher["PVALUE"] == pytest.approx(stats.fisher_exact(table)[1])
    died = adsl.loc[adsl["DTHFL"].eq("Y") & adsl["ICE1FL"].eq("N")
                    & ((adsl["DTHDT"] - adsl["RANDDT"]).dt.days + 1 <= trial.horizon_days), "USUBJID"]
    assert set(status.loc[status["STATUS"] == survival.EVENT, "USUBJID"]) == set(died)


def test_number_at_risk_matches_kaplan_meier(adam, trial):
    days = survival.risk_days(trial)
    assert days[0] == 0 and days[-1] == trial.horizon_days
    risk = survival.number_at_risk(adam["adtte"], trial, "OS", days)
    assert risk[0].to_dict() == cohort.arm_n(adam["adsl"], trial)
    km = survival.km_by_arm(adam["adtte"], trial)
    for arm in trial.arms:
        k = km[(km["ARM"] == arm.label) & (km["TIME"] > 0)]
        later = k[k["TIME"] >= days[1]].iloc[0]
        assert risk.loc[arm.label, days[1]] == later["N_RISK"]


def test_km_figure_plots_the_km_table(adam, trial):
    km = survival.km_by_arm(adam["adtte"], trial)
    risk = survival.number_at_risk(adam["adtte"], trial, "OS", survival.risk_days(trial))
    header = arm_header(adam["adsl"], trial)
    fig = plots.plot_km(km, risk, trial, header)
    ax, tab = fig.axes
    steps = [line for line in ax.get_lines() if line.get_drawstyle().startswith("steps")]
    for line, arm in zip(steps, trial.arms):
        surv = 100 * km.loc[km["ARM"] == arm.label, "SURV"].to_numpy()
        np.testing.assert_allclose(line.get_ydata()[:-1], surv)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [header[a.label] for a in trial.arms]
    assert sorted(int(t.get_text()) for t in tab.texts) == sorted(risk.to_numpy().ravel().tolist())


def test_intercurrent_events_add_up_to_visit_completeness(adam, trial):
    ice = survival.intercurrent_events(adam["adsl"], adam["adlb"], trial)
    comp = cohort.visit_completeness(adam["adsl"], adam["adlb"], trial)
    assert len(ice) == len(trial.arms) * len(trial.visits)
    np.testing.assert_array_equal(ice[survival.causes(trial)].sum(axis=1),
                                  comp["Ended before visit"])
    np.testing.assert_array_equal(ice["Missed"], comp["Missed"])
    last = ice[ice["Visit"] == trial.last_visit.label].set_index("Arm")
    adsl = adam["adsl"]
    for arm in trial.arms:
        sl = adsl[adsl["ARMCD"] == arm.code]
        assert last.loc[arm.label, survival.DEATH] <= (sl["DTHFL"] == "Y").sum()


def test_survival_results_are_tidy(adam, trial):
    res = survival.survival_results(adam["adtte"], adam["adsl"], trial)
    assert set(res["PARAMCD"]) == {"OS", "TFS"}
    assert list(res.columns) == ["PARAMCD", "ANALYSIS", "ARM", "REFERENCE", "ESTIMATE", "LCL", "UCL", "PVALUE",
                                 "EVENTS", "N"]
    km = res[(res["PARAMCD"] == "OS") & res["ANALYSIS"].str.startswith(survival.KM_SURVIVAL)]
    assert km["ARM"].tolist() == [a.label for a in trial.arms]
    assert ((km["LCL"] <= km["ESTIMATE"]) & (km["ESTIMATE"] <= km["UCL"])).all()


SEEDS = range(101, 111)


def _pooled(trial, effects, tmp_path):
    """ADTTE of several simulated cohorts stacked, SEED the stratum; and each cohort's KM difference at the horizon."""
    frames, diffs = [], []
    for seed in SEEDS:
        folder = tmp_path / f"{seed}"
        write_export(simulate_export(trial, seed=seed, effects=effects), folder)
        c = load_cohort(str(folder))
        frames.append(c.adtte.assign(SEED=seed))
        diffs.append(survival.survival_at_horizon(c.adtte, c.trial)["ESTIMATE"].iloc[-1])
    return pd.concat(frames, ignore_index=True), float(np.mean(diffs))


def test_simulated_survival_benefit_is_shown(trial, tmp_path):
    pooled, mean_diff = _pooled(trial, {"HA": {"OS_HR": 0.1}}, tmp_path)
    hr = survival.cox_hr(pooled, trial, strata="SEED").iloc[0]
    assert hr["ARM"] == trial.arm_labels["HA"]
    assert hr["UCL"] < 1 and hr["HR"] < 0.4
    assert survival.logrank(pooled, trial, strata="SEED")["PVALUE"] < 0.01
    assert mean_diff > 0.05


def test_no_survival_difference_under_the_null(trial, tmp_path):
    pooled, mean_diff = _pooled(trial, {}, tmp_path)
    hr = survival.cox_hr(pooled, trial, strata="SEED").iloc[0]
    assert hr["LCL"] < 1 < hr["UCL"] and 0.5 < hr["HR"] < 2
    assert survival.logrank(pooled, trial, strata="SEED")["PVALUE"] > 0.05
    assert abs(mean_diff) < 0.08


def test_sister_trial_runs_through_the_same_helpers(tmp_path):
    sister = load_trial("NCT06242405")
    write_export(simulate_export(sister, seed=3), tmp_path)
    c = load_cohort(str(tmp_path), "NCT06242405")
    res = survival.survival_results(c.adtte, c.adsl, sister)
    assert set(res.loc[res["ANALYSIS"].str.startswith(survival.KM_SURVIVAL), "ARM"]) == set(sister.arm_labels.values())
    assert len(survival.intercurrent_events(c.adsl, c.adlb, sister)) == len(sister.arms) * len(sister.visits)


def test_formatting_for_reports(adam, trial):
    assert format_p(0.0004) == "<0.001" and format_p(0.04321) == "0.043"
    assert format_p(float("nan")) == "" and format_p(None) == ""
    assert estimate_text(0.8125, 0.5, 0.9, scale=100, digits=1) == "81.2 (50.0 to 90.0)"
    assert estimate_text(float("nan"), float("nan"), float("nan")) == "not estimable"
    res = survival.survival_results(adam["adtte"], adam["adsl"], trial)
    table = report.summary_table(res, "OS")
    assert len(table) == (res["PARAMCD"] == "OS").sum()
    km = res[(res["PARAMCD"] == "OS") & res["ANALYSIS"].str.startswith(survival.KM_SURVIVAL)].iloc[0]
    assert table.loc[0, "Estimate (95% CI)"].startswith(f"{100 * km.ESTIMATE:.1f} (")


def test_report_tables_count_every_participant(adam, trial):
    header = arm_header(adam["adsl"], trial)
    counts = survival.event_counts(adam["adtte"], trial, "OS")
    table = report.event_counts_table(counts, header)
    assert table["Arm"].tolist() == list(header.values()) and table["Deaths"].tolist() == counts["EVENTS"].tolist()
    assert all(c.startswith("Censored: ") for c in table.columns[3:])
    vital = report.vital_status_table(adam["adtte"], adam["adsl"], trial, header)
    assert list(vital.columns) == ["Arm", "Alive", "Died", "Unknown"]
    n = vital[["Alive", "Died", "Unknown"]].apply(lambda col: col.str.split(" ").str[0].astype(int)).sum(axis=1)
    assert n.tolist() == list(cohort.arm_n(adam["adsl"], trial).values())
    fisher = survival.fisher_survivors(adam["adtte"], adam["adsl"], trial).iloc[0]
    died = vital.set_index("Arm")["Died"].str.split(" ").str[0].astype(int)
    assert died[header[fisher["ARM"]]] == fisher["EVENT_ARM"]


def test_difference_row_counts_both_arms(adam, trial):
    res = survival.survival_results(adam["adtte"], adam["adsl"], trial)
    os_ = res[res["PARAMCD"] == "OS"]
    diff = os_[os_["ANALYSIS"].str.startswith(survival.KM_DIFFERENCE)].iloc[0]
    per_arm = os_[os_["ANALYSIS"].str.startswith(survival.KM_SURVIVAL)].set_index("ARM")
    assert diff["EVENTS"] == per_arm.loc[[diff["ARM"], diff["REFERENCE"]], "EVENTS"].sum()
    assert diff["N"] == len(adam["adsl"]) if len(trial.arms) == 2 else True
    assert diff["ESTIMATE"] == pytest.approx(per_arm.loc[diff["ARM"], "ESTIMATE"] - per_arm.loc[diff["REFERENCE"], "ESTIMATE"])


def test_prose_numbers_quote_the_results_table():
    results = pd.DataFrame([
        {"PARAMCD": "OS", "ANALYSIS": "KM survival at day 168", "ARM": "A", "REFERENCE": "", "ESTIMATE": 0.8,
         "LCL": 0.5, "UCL": 0.93, "PVALUE": np.nan, "EVENTS": 3, "N": 16},
        {"PARAMCD": "OS", "ANALYSIS": "KM difference at day 168", "ARM": "B", "REFERENCE": "A", "ESTIMATE": 0.0625,
         "LCL": -0.2, "UCL": 0.3, "PVALUE": np.nan, "EVENTS": 5, "N": 32},
        {"PARAMCD": "OS", "ANALYSIS": "log-rank chi-square", "ARM": "all", "REFERENCE": "", "ESTIMATE": 0.261,
         "LCL": np.nan, "UCL": np.nan, "PVALUE": 0.6081, "EVENTS": 5, "N": 32},
        {"PARAMCD": "OS", "ANALYSIS": "Cox hazard ratio (Efron ties)", "ARM": "B", "REFERENCE": "A", "ESTIMATE": 0.63,
         "LCL": 0.1, "UCL": 3.76, "PVALUE": 0.61, "EVENTS": 5, "N": 32},
        {"PARAMCD": "OS", "ANALYSIS": "Fisher exact odds ratio (event-free at horizon)", "ARM": "B", "REFERENCE": "A",
         "ESTIMATE": 1.6, "LCL": np.nan, "UCL": np.nan, "PVALUE": 1.0, "EVENTS": 5, "N": 30}])
    out = report.prose_numbers(results, "OS", load_trial("NCT06984497"))
    assert out == {"os_surv": "A 80.0% (50.0 to 93.0)", "os_diff": "B minus A 6.2 (-20.0 to 30.0) percentage points",
                   "os_logrank": "chi-square 0.26, P = 0.608", "os_hr": "B vs A 0.63 (0.10 to 3.76)",
                   "os_events": "5 deaths",
                   "os_caution": report.few_events_caution(5), "os_fisher": "B vs A P = 1.000"}


def test_status_at_the_horizon_is_known_only_when_followed_to_it(trial):
    """Administrative censoring: a participant who completed the study alive before reaching the horizon (a study
    that closed early for them) has an unknown status there, not event-free; a completer seen at the visit that
    assesses the horizon is event-free; an event before the horizon is an event."""
    h, assessed = trial.horizon_days, trial.horizon_assessed_from
    assert assessed == 155 and h == 168, "week 24's window [155, 183] holds day 168"
    cases = {  # USUBJID: (days followed, event, end of study status, expected status)
        "A": (h, 0, "COMPLETED", survival.EVENT_FREE), "B": (160, 0, "COMPLETED", survival.EVENT_FREE),
        "C": (120, 0, "COMPLETED", survival.UNKNOWN), "D": (90, 1, "DISCONTINUED", survival.EVENT),
        "E": (160, 0, "DISCONTINUED", survival.UNKNOWN), "F": (h, 0, "DISCONTINUED", survival.EVENT_FREE)}
    arms = [trial.control.label, trial.experimental_arms[0].label]
    adtte = pd.DataFrame({"USUBJID": list(cases), "PARAMCD": "OS", "TRT01P": [arms[i % 2] for i in range(6)],
                          "AVAL": [c[0] for c in cases.values()], "CNSR": [1 - c[1] for c in cases.values()],
                          "EVNTDESC": ""})
    adsl = pd.DataFrame({"USUBJID": list(cases), "EOSSTT": [c[2] for c in cases.values()]})
    status = survival.status_at_horizon(adtte, adsl, trial).set_index("USUBJID")["STATUS"]
    assert status.to_dict() == {u: c[3] for u, c in cases.items()}
    fisher = survival.fisher_survivors(adtte, adsl, trial).iloc[0]
    assert fisher["UNKNOWN_ARM"] + fisher["UNKNOWN_REF"] == 2
