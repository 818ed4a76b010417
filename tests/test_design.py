"""The design simulation (``analysis.design``) and its display (``report.design``, ``plots.plot_design_power``):
the same seeds give the same results on one worker, two workers or a Dask cluster; the simulated cohort follows the
cohort generator; the simulation recovers the truth it simulates; the type-I error is near its level."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.analysis import design, findings
from helpers.data import simulation

NULL = design.Scenario(1.0, 0.0, "null")
ALT = design.Scenario(0.5, -1.0, "alt")


def _z_tolerance(p: float, m: int, z: float = 3.29) -> float:
    """Half-width of a 99.9% normal interval for a Monte Carlo rate p from m replicates."""
    return z * np.sqrt(p * (1 - p) / m)


# ------------------------------------------------------------------ one simulated trial

def test_a_simulated_trial_has_what_the_analyses_read(trial):
    data = design.simulate_cohort(trial, ALT, np.random.default_rng(3))
    adsl, adtte, adlb = data["adsl"], data["adtte"], data["adlb"]
    assert len(adsl) == len(adtte) == trial.planned_n
    assert adsl["TRT01P"].value_counts().to_dict() == {a.label: trial.planned_n // 2 for a in trial.arms}
    assert adtte["AVAL"].between(1, trial.horizon_days).all() and set(adtte["CNSR"]) <= {0, 1}
    assert (adtte.loc[adtte["CNSR"] == 0, "EVNTDESC"] == "DEATH").all()
    assert set(adlb["PARAMCD"]) == {trial.key_secondary}
    assert list(adlb["AVISIT"].unique()) == [v.label for v in trial.visits]
    post = adlb[adlb["AVISITN"] > 0].dropna(subset=["BASE"])
    np.testing.assert_allclose(post["CHG"], post["AVAL"] - post["BASE"])
    # the book's own analyses run on it
    row = design.analyse_cohort(trial, data)
    assert row["primary_outcome"] in (findings.MET, findings.NOT_MET)
    assert np.isfinite([row["primary_estimate"], row["key_estimate"], row["key_se"]]).all()


def test_the_cohort_follows_the_generator_of_the_synthetic_cohort(trial):
    """End of follow-up (death, transplant, withdrawal, completion) and attended visits, in a large cohort, against
    ``simulation.simulate_participants`` itself."""
    n = 12000
    rng = np.random.default_rng(5)
    screening = pd.DataFrame({"screening_id": [f"S{i}" for i in range(n)], "etiology": "HBV",
                              "screening_date": [dt.date(2025, 7, 1)] * n})
    randomization = pd.DataFrame({"subject_id": [f"01-{i}" for i in range(n)], "screening_id": screening["screening_id"],
                                  "rand_date": [dt.date(2025, 7, 5)] * n, "arm": np.where(np.arange(n) % 2, "HA", "PV")})
    book = simulation.simulate_participants(trial, screening, randomization, rng, {"HA": {"OS_HR": 0.5}})
    ours = design._people(trial, design.Scenario(0.5), np.random.default_rng(6), n, stratified_deaths=False)
    for arm in ("PV", "HA"):
        theirs = book.loc[book["arm"] == arm, "end"].value_counts(normalize=True)
        mine = pd.Series(ours["end"][ours["allocated"] == arm]).value_counts(normalize=True)
        for end in ("DEATH", "TRANSPLANT", "WITHDRAWAL", "COMPLETED"):
            assert abs(mine.get(end, 0) - theirs.get(end, 0)) < _z_tolerance(theirs.get(end, 0), n // 2) * 1.5, (arm, end)
    visits = [book[f"done_{v.code}"].mean() for v in trial.followup_visits]
    np.testing.assert_allclose(ours["attended"].mean(axis=0), visits, atol=0.02)


@pytest.mark.slow
def test_the_key_endpoint_follows_the_books_own_analysis_data(trial, tmp_path):
    """MELD by visit from 30 synthetic exports taken through validation and ADaM (the book's route) against one
    design cohort of the same size: records per visit, mean, and the spread of the change (changes of 8 points or
    more, from the generator's rare dialysis, are left out of the spread: a few of them dominate it)."""
    from helpers.data.adam import analysis_records, build_adam
    from helpers.data.loading import load_export

    book = []
    for s in range(30):
        folder = tmp_path / str(s)
        simulation.write_export(simulation.simulate_export(trial, seed=1000 + s, effects={}), folder)
        adlb = analysis_records(build_adam(load_export(folder, trial), trial)["adlb"])
        book.append(adlb.loc[adlb["PARAMCD"] == trial.key_secondary, ["AVISITN", "AVAL", "CHG"]])
    book = pd.concat(book).astype(float)
    ours = design.simulate_cohort(trial, NULL, np.random.default_rng(0), n=30 * trial.planned_n)["adlb"]
    for d in (book, ours):
        d["small"] = d["CHG"].where(d["CHG"].abs() < 8)
    b, o = (d.groupby("AVISITN").agg(n=("AVAL", "size"), mean=("AVAL", "mean"), sd=("small", "std")) for d in (book, ours))
    np.testing.assert_allclose(o["n"], b["n"], rtol=0.05)
    np.testing.assert_allclose(o["mean"], b["mean"], atol=0.6)
    np.testing.assert_allclose(o["sd"].iloc[1:], b["sd"].iloc[1:], atol=0.15)


def test_truths(trial):
    assert design.death_probability(trial, 1.0) == pytest.approx(trial.simulation.death_rate_24w, abs=0.003)
    assert design.death_probability(trial, 0.0) == 0.0
    t = design.true_values(trial, ALT)
    q = design.SWITCH_PROBABILITY / trial.planned_n
    assert t["key_truth"] == pytest.approx(-1.0 * (1 - 2 * q))
    assert t["primary_truth"] == pytest.approx((1 - 2 * q) * (design.death_probability(trial, 1.0)
                                                               - design.death_probability(trial, 0.5)))


def test_required_n_scales_the_simulated_se(trial):
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert design.required_n(32, 1.0, z, 0.05) == 32          # the SE at 32 is exactly what 80% power needs
    assert design.required_n(32, 1.0, z / 2, 0.05) == 128     # half the effect: four times the participants
    assert design.required_n(32, 1.0, z / 2.01, 0.05, multiple=4) == 132  # 129.3 rounded up to whole blocks
    assert np.isnan(design.required_n(32, 1.0, 0.0, 0.05))


def test_default_scenarios_grow_from_the_null(trial):
    s = design.default_scenarios(trial)
    assert s[0].is_null and [x.hazard_ratio for x in s] == [1.0, 0.75, 0.5, 0.25, 0.0]
    effects = [x.key_effect for x in s]
    assert effects == sorted(effects, reverse=True) and effects[-1] < 0   # MELD: lower is better
    assert abs(effects[-1]) == pytest.approx(design.key_change_sd(trial), rel=0.03)


# ------------------------------------------------------------------ reproducibility

def test_same_seeds_same_results_with_one_or_two_workers(trial):
    one = design.simulate_design(trial, [NULL, ALT], replicates=6, seed=11, n_jobs=1, chunk_size=4)
    two = design.simulate_design(trial, [NULL, ALT], replicates=6, seed=11, n_jobs=2, chunk_size=1)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert len(one) == 12 and one["key_estimate"].notna().all()
    other = design.simulate_design(trial, [NULL], replicates=6, seed=12, n_jobs=1)
    assert not np.array_equal(other["key_estimate"], one.loc[one["scenario"] == 0, "key_estimate"])


def test_common_random_numbers_across_scenarios(trial):
    """Replicate i draws the same participants in every scenario: with no effect on deaths, the same deaths."""
    r = design.simulate_design(trial, [NULL, design.Scenario(1.0, -1.0)], replicates=4, seed=3, n_jobs=1)
    by = r.pivot(index="replicate", columns="scenario", values="deaths")
    assert (by[0] == by[1]).all()


@pytest.mark.slow
def test_a_dask_cluster_gives_the_local_results(trial, monkeypatch):
    from dask.distributed import LocalCluster

    local = design.simulate_design(trial, [NULL, ALT], replicates=4, seed=11, n_jobs=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = design.simulate_design(trial, [NULL, ALT], replicates=4, seed=11, scheduler=cluster.scheduler_address,
                                        chunk_size=1)
        monkeypatch.setenv("DASK_SCHEDULER", cluster.scheduler_address)
        assert design.scheduler_address() == cluster.scheduler_address
        from_env = design.simulate_design(trial, [NULL, ALT], replicates=4, seed=11)
    pd.testing.assert_frame_equal(local, remote, check_exact=True)
    pd.testing.assert_frame_equal(local, from_env, check_exact=True)


# ------------------------------------------------------------------ recovering the truth

def _check_recovery(row: pd.Series) -> list[str]:
    """What fails in a summary row: |bias| >= 10% of the SE, coverage outside 93-97%."""
    out = []
    if not abs(row["bias"]) < 0.1 * row["empirical_se"]:
        out.append(f"bias {row['bias']:.4f} vs SE {row['empirical_se']:.4f}")
    if not 0.93 <= row["coverage"] <= 0.97:
        out.append(f"coverage {row['coverage']:.3f}")
    return out


@pytest.fixture(scope="module")
def null_and_alt(trial):
    """1000 simulated trials of the design under the null and under an alternative (both analyses)."""
    reps = design.simulate_design(trial, [NULL, ALT], replicates=1000, seed=20260101)
    return design.operating_characteristics(reps, trial), reps


@pytest.mark.slow
def test_the_key_secondary_estimate_recovers_the_truth(null_and_alt):
    oc, _ = null_and_alt
    alt = oc[(oc["endpoint"] == design.KEY) & (oc["name"] == "alt")].iloc[0]
    assert alt["estimable"] == alt["replicates"] == 1000 and alt["truth"] < 0
    assert _check_recovery(alt) == []
    # the check itself fails on a biased estimate
    biased = alt.copy()
    biased["bias"] = alt["bias"] + 0.2 * alt["empirical_se"]
    assert _check_recovery(biased)


@pytest.mark.slow
def test_the_primary_estimate_recovers_the_truth_when_deaths_are_many(trial):
    """The Kaplan-Meier difference and its Greenwood-Wald interval are large-sample methods: checked at 400
    participants (about 45 deaths), where the simulator, not the method, is under test."""
    reps = design.simulate_design(trial, [ALT], replicates=1000, seed=20260102, n=400, analyses=(design.PRIMARY,))
    row = design.operating_characteristics(reps, trial).iloc[0]
    assert row["truth"] > 0.05
    assert _check_recovery(row) == []


@pytest.mark.slow
def test_type_one_error_is_near_alpha(null_and_alt, trial):
    oc, reps = null_and_alt
    null = oc[oc["name"] == "null"].set_index("endpoint")
    m = int(null.loc[design.KEY, "replicates"])
    key = round(null.loc[design.KEY, "power"] * m)
    assert stats.binomtest(key, m, trial.alpha).pvalue > 0.001, f"MMRM type-I error {key}/{m}"
    # Fisher's exact test on ~5 deaths is conservative: at most alpha, not necessarily near it
    primary = round(null.loc[design.PRIMARY, "power"] * m)
    assert stats.binomtest(primary, m, trial.alpha, alternative="greater").pvalue > 0.001
    # the fixed sequence claims the key secondary only after the primary endpoint: never more often
    assert null.loc[design.KEY, "claimed"] <= null.loc[design.PRIMARY, "power"]
    null_reps = reps[reps["name"] == "null"]
    assert ((null_reps["key_outcome"] == findings.MET) <= (null_reps["primary_outcome"] == findings.MET)).all()


# ------------------------------------------------------------------ the chapter's display

@pytest.fixture(scope="module")
def small_oc(trial):
    reps = design.simulate_design(trial, replicates=3, seed=1, n_jobs=1)
    return design.operating_characteristics(reps, trial)


def test_chapter_numbers_and_tables(small_oc, trial):
    from helpers.report import design as report

    numbers = report.chapter_numbers(small_oc, trial, 3)
    assert numbers["n_planned"] == trial.planned_n and numbers["replicates"] == 3
    assert numbers["hr_min"].startswith("0 ") and numbers["power_primary_text"].startswith("hazard ratio 0.75: ")
    assert all(v != "" for k, v in numbers.items() if k not in ("deaths_null", "assumptions_note", "primary_fallback"))
    assert numbers["assumptions_note"] == ""
    assert len(report.scenario_table(small_oc, trial)) == len(report.primary_table(small_oc, trial)) == 5
    key = report.key_table(small_oc, trial)
    assert list(key["Scenario"]) == ["Null"] + [f"Alternative {k}" for k in range(1, 5)]
    assert report.show_key(small_oc, trial).name == "tab-design-key"
    assert len(report.operating_table(small_oc, trial)) == 5


def test_level_note():
    from helpers.report.design import level_note

    assert level_note(pd.Series({"power_lower": 0.001, "power_upper": 0.03}), 0.05, True).startswith("below")
    assert level_note(pd.Series({"power_lower": 0.03, "power_upper": 0.07}), 0.05) == "in line with the nominal level of 0.05"
    assert level_note(pd.Series({"power_lower": 0.06, "power_upper": 0.09}), 0.05).startswith("above")


def test_power_figure(small_oc, trial):
    from helpers.report import plots

    fig = plots.plot_design_power(small_oc, trial)
    left, right = fig.axes
    assert left.xaxis_inverted() and "Hazard ratio" in left.get_xlabel()
    assert trial.endpoint(trial.key_secondary).label in right.get_xlabel()
    assert plots.plot_design_power(small_oc.iloc[0:0], trial).axes[0].texts  # placeholder says why


# ------------------------------------------------------------------ one model: the cohort generator's public functions

def test_the_design_uses_the_generators_public_functions_not_copies():
    """design.py imports nothing private from the generator and redefines none of its constants."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(design.__file__).read_text(encoding="utf-8"))
    private = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "helpers.data.simulation"
               for a in n.names if a.name.startswith("_")]
    private += [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                and n.value.id == "simulation" and n.attr.startswith("_")]
    assert not private, private
    constants = {n.targets[0].id for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    shared = {k for k, v in vars(simulation).items() if k.isupper() and isinstance(v, (int, float))}
    assert not constants & shared, sorted(constants & shared)


@pytest.fixture(scope="module")
def ckd():
    from helpers.trial import load_trial

    return load_trial("DEMO-CKD")


def test_the_design_runs_for_a_trial_in_another_disease(ckd):
    """DEMO-CKD: the primary endpoint is kidney failure or death (log-rank), the key secondary UACR on the log scale."""
    reps = design.simulate_design(ckd, [NULL, design.Scenario(0.5, -0.4, "alt")], replicates=3, n_jobs=1)
    assert len(reps) == 6 and reps["primary_p"].notna().all() and reps["key_estimate"].notna().all()
    data = design.simulate_cohort(ckd, NULL, np.random.default_rng(1), n=2000)
    adtte = data["adtte"]
    assert set(adtte["PARAMCD"]) == {"KFD"}
    events = adtte.loc[adtte["CNSR"] == 0, "EVNTDESC"].value_counts()
    assert set(events.index) == {"KIDNEY_FAILURE", "DEATH"} and events["KIDNEY_FAILURE"] > events["DEATH"]
    assert set(data["adlb"]["PARAMCD"]) == {"UACR"}


def test_the_truth_of_a_composite_endpoint_counts_each_of_its_events(ckd):
    """P(kidney failure or death by the horizon) with independent hazards each calibrated to its own probability
    (10% and 4%): at least the larger, at most their sum, and the hazard ratio acts on both."""
    p = design.event_probability(ckd, 1.0)
    assert 0.10 < p < 0.14
    assert design.event_probability(ckd, 0.0) == 0.0
    assert design.event_probability(ckd, 0.5) < 0.6 * p


def test_the_design_chapter_says_which_models_the_book_assumed(ckd):
    from helpers.report import design as report

    note = report.assumptions_note(ckd)
    assert "laboratory model of SODIUM" in note and "the book assumed it" in note
    assert note.endswith("are not a design for this trial.")


def test_a_derived_key_endpoint_with_participant_inputs_is_simulated(ckd):
    """eGFR (CKD-EPI 2021) needs age and sex: the design draws them by the generator's rules (draw_demographics), so a
    kidney trial whose key secondary is eGFR runs; baseline eGFR follows creatinine (median 180 umol/L, age 63)."""
    import dataclasses

    from helpers.trial import Endpoint

    egfr = Endpoint("EGFR", "eGFR", "mL/min/1.73 m2", False, "higher", "derived")
    t = dataclasses.replace(ckd, endpoints=ckd.endpoints + (egfr,), key_secondary="EGFR")
    adlb = design.simulate_cohort(t, NULL, np.random.default_rng(0), n=2000)["adlb"]
    base = adlb.loc[adlb["AVISITN"] == 0, "AVAL"]
    assert 25 < base.median() < 40
    reps = design.simulate_design(t, [NULL], replicates=2, n_jobs=1)
    assert reps["key_estimate"].notna().all()


# ------------------------------------------------------------------ a continuous primary endpoint

def ckd_continuous_file(folder, visit: str = "WEEK52") -> "Path":
    """DEMO-CKD's trial file with eGFR (derived from creatinine, age and sex) added to its endpoints and made the
    primary endpoint, continuous at ``visit``; no primary test (a continuous primary is tested by its MMRM)."""
    from helpers import paths

    text = paths.trial_file("DEMO-CKD").read_text(encoding="utf-8")
    hgb = "  - {code: HGB, label: Haemoglobin, unit: g/L, log: false, better: higher, source: lab}\n"
    primary = ("primary_endpoint:\n  code: KFD\n  label: Kidney failure or death to week 52\n  horizon_days: 364\n")
    assert hgb in text and primary in text and "  primary_test: logrank\n" in text
    text = (text.replace(hgb, hgb + "  - {code: EGFR, label: eGFR, unit: mL/min/1.73m2, log: false, better: higher, "
                                    "source: derived}\n")
            .replace("  primary_test: logrank\n", "")
            .replace(primary, f"primary_endpoint:\n  code: EGFR\n  kind: continuous\n  visit: {visit}\n"
                              f"  label: Change in eGFR to {visit}\n"))
    path = folder / f"ckd-egfr-{visit}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def egfr(tmp_path_factory):
    from helpers.trial import load_trial

    return load_trial(ckd_continuous_file(tmp_path_factory.mktemp("egfr")))


def test_a_continuous_primary_is_analysed_by_its_mmrm_at_the_primary_visit(egfr):
    """The design's primary analysis of a continuous primary endpoint is the book's: the MMRM contrast at the primary
    visit (``findings.key_mmrm``, ``findings.primary_p``), its estimate and p-value those of the model table."""
    assert design.is_continuous(egfr) and egfr.primary_visit.code == "WEEK52"
    data = design.simulate_cohort(egfr, design.Scenario(primary_effect=3.0, key_effect=-0.3), np.random.default_rng(2))
    adsl, adlb = data["adsl"], data["adlb"]
    assert set(adlb["PARAMCD"]) == {"EGFR", "UACR"} and len(adsl) == egfr.planned_n
    row = design.analyse_cohort(egfr, data)
    mmrm = findings.key_mmrm(adlb, adsl, egfr)
    book = findings.primary_row(mmrm, egfr)
    assert row["primary_p"] == findings.primary_p(pd.DataFrame(), mmrm, egfr) == book["p_value"]
    assert row["primary_estimate"] == book["estimate"] and row["primary_se"] == book["se"]
    assert row["key_estimate"] == pytest.approx(np.log(findings.key_secondary_row(mmrm, egfr)["estimate"]))
    assert "deaths" not in row
    assert [d.outcome for d in findings.decisions(pd.DataFrame(), mmrm, egfr)] == [row["primary_outcome"],
                                                                                  row["key_outcome"]]


@pytest.mark.parametrize("visit", ["WEEK52", "WEEK24"])
def test_the_scenario_shifts_a_continuous_primary_by_its_effect_at_the_primary_visit(tmp_path, visit):
    """Same seed, with and without an effect of 2 on eGFR (a derived endpoint: the effect is added): at the primary
    visit every treated participant's eGFR differs by exactly 2, a control participant's not at all, also when the
    primary visit is before the last (the effect ramps in: 24/52 of the full effect at week 24)."""
    from helpers.trial import load_trial

    t = load_trial(ckd_continuous_file(tmp_path, visit))
    a, b = (design.simulate_cohort(t, s, np.random.default_rng(4))["adlb"]
            for s in (design.Scenario(), design.Scenario(primary_effect=2.0)))
    assert a[["USUBJID", "AVISIT"]].equals(b[["USUBJID", "AVISIT"]])
    at = (a["PARAMCD"] == "EGFR") & (a["AVISIT"] == t.primary_visit.label)
    diff = (b.loc[at, "AVAL"] - a.loc[at, "AVAL"]).round(9)
    treated = a.loc[at, "TRT01P"] != t.control.label   # no participant switched arms with this seed
    assert set(diff[treated]) == {2.0} and set(diff[~treated]) == {0.0}
    assert design.scenario_effects(t, design.Scenario(primary_effect=2.0))["EGFR"] == pytest.approx(
        2.0 / (t.primary_visit.week / t.followup_weeks))


def test_scenarios_and_truths_of_a_continuous_primary(egfr):
    s = design.default_scenarios(egfr)
    assert s[0].is_null and all(x.hazard_ratio == 1.0 for x in s)
    effects = [x.primary_effect for x in s]
    assert effects == sorted(effects) and effects[-1] > 0   # eGFR: higher is better
    assert effects[-1] == pytest.approx(design.primary_change_sd(egfr), rel=0.03)
    t = design.true_values(egfr, design.Scenario(primary_effect=3.0, key_effect=-0.3))
    q = design.SWITCH_PROBABILITY / egfr.planned_n
    assert t["primary_truth"] == pytest.approx(3.0 * (1 - 2 * q)) and t["key_truth"] == pytest.approx(-0.3 * (1 - 2 * q))
    assert np.isnan(t["death_control"])


@pytest.fixture(scope="module")
def egfr_oc(egfr):
    reps = design.simulate_design(egfr, replicates=6, seed=3, n_jobs=1)
    return design.operating_characteristics(reps, egfr), reps


def test_operating_characteristics_of_a_continuous_primary(egfr_oc, egfr):
    """Power of the primary endpoint is the share of replicates whose MMRM contrast at the primary visit is
    significant; the fixed sequence never claims the key secondary more often than the primary is met."""
    oc, reps = egfr_oc
    prim = oc[oc["endpoint"] == design.PRIMARY].set_index("scenario")
    key = oc[oc["endpoint"] == design.KEY].set_index("scenario")
    by = reps.groupby("scenario")
    pd.testing.assert_series_equal(prim["power"], by["primary_p"].apply(lambda p: (p < egfr.alpha).mean()),
                                   check_names=False)
    assert (key["claimed"] <= prim["power"]).all()
    assert ((reps["key_outcome"] == findings.MET) <= (reps["primary_outcome"] == findings.MET)).all()
    assert (prim["truth"].iloc[1:] > 0).all() and prim["n_for_power"].iloc[1:].notna().all()


def test_the_chapter_names_a_continuous_primary(egfr_oc, egfr):
    from helpers.report import design as report
    from helpers.report import plots

    oc, _ = egfr_oc
    numbers = report.chapter_numbers(oc, egfr, 6)
    assert numbers["primary_test"] == "the MMRM contrast at Week 52"
    assert numbers["primary_what"] == "change in eGFR from baseline to Week 52"
    assert numbers["scenario_text"].startswith("Scenario k shifts the change in eGFR from baseline to Week 52")
    assert numbers["power_primary_text"].startswith("effect ") and "mL/min/1.73m2: " in numbers["power_primary_text"]
    for k in ("scenario_text", "estimands_text", "primary_analysis_text", "power_primary_text", "mde_primary_text",
              "n80_primary_text", "effects_assumed"):
        assert "hazard ratio" not in numbers[k] and "survival" not in numbers[k], k
    assert "eGFR" in numbers["mde_primary_text"] and "eGFR" in numbers["estimands_text"]
    assert list(report.primary_table(oc, egfr)["Scenario"]) == ["Null"] + [f"Alternative {k}" for k in range(1, 5)]
    assert "Effect on eGFR" in report.scenario_table(oc, egfr).columns
    assert report.show_primary(oc, egfr).name == "tab-design-primary"
    left, _ = plots.plot_design_power(oc, egfr).axes
    assert "eGFR" in left.get_xlabel() and not left.xaxis_inverted()


def test_the_chapter_glues_the_intercurrent_events_by_their_labels(small_oc, trial, ckd):
    from helpers.report import design as report

    numbers = report.chapter_numbers(small_oc, trial, 3)
    labels = [e.label.lower() for e in trial.intercurrent_events]
    assert numbers["hazards_text"] == " and ".join(["death"] + labels)
    assert numbers["follow_up_ends"] == ", ".join(["death"] + labels + ["withdrawal"])
    assert all(x in numbers["estimands_text"] for x in labels)
    assert numbers["scenario_text"].startswith("Scenario k multiplies the hazards of death on the experimental arm")
    assert report.primary_events_text(ckd) == "kidney failure (dialysis or kidney transplant) and death"


@pytest.mark.slow
def test_type_one_error_of_a_continuous_primary_is_near_alpha(egfr):
    """1000 simulated trials under the null: the MMRM of the primary endpoint rejects at about alpha, and the fixed
    sequence claims the key secondary no more often than the primary is met."""
    reps = design.simulate_design(egfr, [NULL], replicates=1000, seed=20260103)
    oc = design.operating_characteristics(reps, egfr).set_index("endpoint")
    m = int(oc.loc[design.PRIMARY, "replicates"])
    rejected = round(oc.loc[design.PRIMARY, "power"] * m)
    assert stats.binomtest(rejected, m, egfr.alpha).pvalue > 0.001, f"MMRM type-I error {rejected}/{m}"
    assert oc.loc[design.KEY, "claimed"] <= oc.loc[design.PRIMARY, "power"]
    assert _check_recovery(oc.loc[design.PRIMARY]) == []
