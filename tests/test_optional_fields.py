"""Optional trial-file keys and export columns are optional: without them the book says what is not stated
or not checked, instead of crashing or inventing (issue 17, items 4 and 7)."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from helpers.analysis import allocation, balance, consort
from helpers.data import randomization
from helpers.data.adam import build_adam
from helpers.data.loading import load_export, read_raw, validate_export
from helpers.report import randomization as randomization_report
from helpers.trial import load_trial
from helpers import paths


def _trial_without(tmp_path, edit):
    """A copy of the default trial file changed by ``edit(raw)``, loaded."""
    raw = yaml.safe_load((paths.ROOT / "trials" / "NCT06984497.yaml").read_text(encoding="utf-8"))
    edit(raw)
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_trial(path)


@pytest.fixture()
def folder(clean_dir, tmp_path):
    dest = tmp_path / "export"
    shutil.copytree(clean_dir, dest)
    return dest


def load_export_of(tables, trial, tmp_path):
    """A simulated export written to a folder and loaded as a site's would be."""
    from helpers.data.simulation import write_export

    write_export(tables, tmp_path / "export")
    return load_export(tmp_path / "export", trial)


def _chapter2(export, trial):
    adsl = build_adam(export, trial)["adsl"]
    flow = consort.consort_flow(export, trial, adsl)
    alloc = randomization.stated_allocation_list(trial)
    checks = allocation.check_allocation(export, trial, alloc)
    smds = balance.baseline_balance(adsl, trial, n_perm=50)
    return alloc, checks, randomization_report.chapter_numbers(trial, flow, alloc, checks, smds), smds


def test_chapter_2_without_seed_or_age_says_what_is_not_stated(tmp_path, clean_dir):
    def edit(raw):
        del raw["randomization"]["seed"]
        del raw["eligibility"]["age"]
    trial = _trial_without(tmp_path, edit)
    export = load_export(clean_dir, trial)
    alloc, checks, numbers, smds = _chapter2(export, trial)
    assert alloc is None
    assert set(checks.not_checked) == {"list", "blocks"}
    assert checks.realized.empty and checks.blocks.empty
    text = " ".join(str(v) for v in numbers.values())
    assert "None" not in text and "seed None" not in text
    assert numbers["age_criterion"] == "age (no bounds: not stated in the trial file)"
    assert numbers["list_seed"] == "not stated in the trial file"
    assert numbers["allocation_text"].startswith("There is no allocation list: the trial file states neither")
    assert numbers["n_mismatch"] == "not checked (no allocation list)"
    assert numbers["block_text"].startswith("The permuted blocks are not checked:")
    assert randomization_report.mismatch_empty(checks).startswith("Not checked:")
    results = checks.results(smds)
    assert set(results.loc[results["statistic"] == "not checked", "check"]) == {"list", "blocks"}
    assert not results["check"].eq("blocks").sum() > 1


def test_default_trial_chapter_2_sentences_are_unchanged(trial, export):
    _, checks, numbers, _ = _chapter2(export, trial)
    assert not checks.not_checked
    assert numbers["age_criterion"] == "age 18 to 80 years at screening"
    assert numbers["allocation_text"].startswith("The allocation list was regenerated from the trial file "
                                                 "(permuted blocks of 4, seed 20250612): permuted blocks of 4, ratio 1:1")
    assert numbers["block_text"].startswith(f"Of {numbers['n_blocks']} blocks used, {numbers['n_complete']} are complete")


def test_simulator_draws_arms_without_a_seed_in_the_trial_file(tmp_path):
    from helpers.data.simulation import simulate_export
    trial = _trial_without(tmp_path, lambda raw: raw["randomization"].pop("seed"))
    export = simulate_export(trial, realistic=False)
    assert export["randomization"]["arm"].notna().all()


def test_randomization_log_without_name_and_block_columns_is_accepted(folder, trial):
    rand = read_raw(folder / "randomization.csv").drop(columns=["name", "block"])
    rand.to_csv(folder / "randomization.csv", index=False, lineterminator="\n")
    _, errors, _ = validate_export(folder, trial)
    assert errors == []
    export = load_export(folder, trial)
    checks = allocation.check_allocation(export, trial, randomization.allocation_list(trial))
    assert set(checks.not_checked) == {"blocks"}
    assert checks.realized["arm_matches"].all() and checks.realized["block_matches"].all()
    assert randomization_report.mismatch_table(checks).empty
    assert randomization_report.block_text(checks).startswith("The permuted blocks are not checked: the randomization "
                                                             "log records no block numbers")
    assert build_adam(export, trial)["adsl"]["RANDBLK"].isna().all()


def test_blank_consent_is_not_recorded_not_declined(folder, trial):
    scr = read_raw(folder / "screening.csv")
    rand = read_raw(folder / "randomization.csv")
    before = consort.consort_flow(load_export(folder, trial), trial,
                                  build_adam(load_export(folder, trial), trial)["adsl"]).set_index("box")["n"]
    declined = scr.index[~scr["screening_id"].isin(rand["screening_id"]) & scr["consent"].eq("N")]
    assert len(declined) >= 1
    scr.loc[declined, "consent"] = ""
    scr.to_csv(folder / "screening.csv", index=False, lineterminator="\n")
    export = load_export(folder, trial)
    flow = consort.consort_flow(export, trial, build_adam(export, trial)["adsl"]).set_index("box")
    refused_before = int(before["excluded:declined"])
    moved = refused_before - int(flow.at["excluded:declined", "n"])
    assert moved >= 1
    assert flow.at["excluded:consent_not_recorded", "n"] == moved
    assert flow.at["excluded:consent_not_recorded", "label"] == "Consent not recorded"
    assert flow.at["excluded", "n"] == before["excluded"]
    clause = randomization_report.consent_not_recorded(flow.reset_index())
    assert clause == f"; for {moved}, consent was not recorded (blank consent cell), which is not counted as declining"


def test_default_flow_has_no_consent_not_recorded_box(export, trial, adam):
    flow = consort.consort_flow(export, trial, adam["adsl"])
    assert "excluded:consent_not_recorded" not in set(flow["box"])
    assert randomization_report.consent_not_recorded(flow) == ""


def test_design_chapter_without_a_simulation_section_states_the_defaults_it_uses(tmp_path):
    from helpers.analysis import design
    from helpers.report import design as design_report

    trial = _trial_without(tmp_path, lambda raw: raw.pop("simulation"))
    assert design.defaulted_assumptions(trial) == ["death_rate_24w", "withdrawal_rate", "missed_visit_rate", "seed"]
    reps = design.simulate_design(trial, replicates=2, n_jobs=1)
    assert reps.equals(design.simulate_design(trial, replicates=2, n_jobs=1)), "the stated default seed is used"
    numbers = design_report.chapter_numbers(design.operating_characteristics(reps, trial), trial, 2)
    assert numbers["design_seed"] == "1"
    note = numbers["assumptions_note"]
    assert note.startswith("The trial file states no simulation assumption for the mortality by the horizon without "
                           "treatment effect, withdrawal rate, missed-visit rate and seed, so this chapter uses the book's "
                           "defaults: mortality by the horizon without treatment effect 15%")
    assert "not this trial's own assumptions" in note


def test_fisher_is_not_estimable_when_an_arm_has_no_known_status_at_the_horizon(adam, trial):
    from helpers.analysis import survival
    from helpers.report import survival as survival_report

    adtte, adsl = adam["adtte"].copy(), adam["adsl"].copy()
    arm = trial.experimental_arms[0].label
    early = adtte["TRT01P"].eq(arm)
    adtte.loc[early, "AVAL"] = adtte.loc[early, "AVAL"].clip(upper=trial.horizon_days - 30)
    adtte.loc[early, "CNSR"] = 1
    adsl.loc[adsl["TRT01P"].eq(arm), "EOSSTT"] = "ONGOING"
    fisher = survival.fisher_survivors(adtte, adsl, trial).iloc[0]
    assert pd.isna(fisher["PVALUE"]) and pd.isna(fisher["ODDS_RATIO"])
    assert fisher["NOT_ESTIMABLE"] == f"{survival.FISHER_NOT_ESTIMABLE} ({arm})"
    results = survival.survival_results(adtte, adsl, trial)
    text = survival_report.prose_numbers(results, "OS", trial)["os_fisher"]
    assert "P = 1.000" not in text and text.endswith("P not estimable: an arm has no participant whose status at "
                                                     "the horizon is known")
    row = survival_report.summary_table(results, "OS").iloc[-1]
    assert row["P value"] == "not estimable"


def test_fisher_on_the_default_trial_is_estimable(adam, trial):
    from helpers.analysis import survival

    fisher = survival.fisher_survivors(adam["adtte"], adam["adsl"], trial).iloc[0]
    assert fisher["NOT_ESTIMABLE"] == "" and 0 < fisher["PVALUE"] <= 1


def test_number_at_risk_columns_adapt_to_the_follow_up_length(trial):
    import dataclasses

    from helpers.analysis import survival

    def with_horizon(days):
        return dataclasses.replace(trial, primary_endpoint=dataclasses.replace(trial.primary_endpoint, horizon_days=days))

    assert survival.risk_days(trial) == [0, 28, 56, 84, 112, 140, 168], "this trial's columns are unchanged"
    assert survival.risk_days(with_horizon(1461)) == [0, 365, 730, 1095, 1460]
    assert survival.risk_days(with_horizon(364)) == [0, 56, 112, 168, 224, 280, 336]
    assert survival.risk_days(with_horizon(728)) == [0, 182, 364, 546, 728]
    for days in (84, 168, 364, 728, 1461, 3650, 20000):
        assert 2 <= len(survival.risk_days(with_horizon(days))) <= 8


def test_four_year_kaplan_meier_figure_is_in_years_with_few_columns(adam, trial):
    import dataclasses

    from helpers.analysis import survival
    from helpers.report.plots import survival as survival_plots

    long = dataclasses.replace(trial, primary_endpoint=dataclasses.replace(trial.primary_endpoint, horizon_days=1461))
    fig = survival_plots.km_figure(survival.km_estimates(adam["adtte"], long), adam["adtte"], adam["adsl"], long)
    tab = fig.axes[1]
    assert tab.get_xlabel() == "Years since randomization"
    assert [t.get_text() for t in tab.get_xticklabels()] == ["0", "1", "2", "3", "4"]
    assert len(tab.texts) == 5 * len(trial.arms)


def test_adverse_events_not_collected_are_said_so_not_counted_as_none(tmp_path, clean_dir):
    from helpers.analysis import safety
    from helpers.report import safety as safety_report

    trial = _trial_without(tmp_path, lambda raw: raw.update(safety={"adverse_events_collected": False}))
    assert not trial.adverse_events_collected
    export = load_export(clean_dir, trial)
    adsl = build_adam(export, trial)["adsl"]
    adae, dth = safety.build_adae(export, adsl, trial), safety.deaths(export, adsl, trial)
    results = safety.adverse_event_results(adae, dth, adsl, trial)
    assert set(results["CATEGORY"]) == {"DEATH"}
    header = safety_report.safety_header(adsl, trial)
    table = safety_report.summary_table(results, header, trial)
    assert list(table.iloc[:4, 0]) == [safety_report.CATEGORY_LABELS[c] for c in safety.AE_CATEGORIES]
    assert (table.iloc[:4, 1:] == "not collected").all().all()
    assert "0 (0.0%)" not in table.to_string()
    numbers = safety_report.chapter_numbers(results, adsl, trial, "source")
    assert numbers["ae_any"] == numbers["ae_serious"] == numbers["n_ae"] == "not collected"
    assert numbers["ae_death"] == safety_report.summary_text(results, "DEATH")
    assert numbers["ae_text"].startswith("As adverse events were not collected in this trial")
    assert safety_report.empty_text(trial, "None.").startswith("Adverse events were not collected")


def test_default_trial_collects_adverse_events_and_counts_them(trial, export, adam):
    from helpers.analysis import safety
    from helpers.report import safety as safety_report

    assert trial.adverse_events_collected
    adae, dth = safety.build_adae(export, adam["adsl"], trial), safety.deaths(export, adam["adsl"], trial)
    results = safety.adverse_event_results(adae, dth, adam["adsl"], trial)
    numbers = safety_report.chapter_numbers(results, adam["adsl"], trial, "source")
    assert numbers["ae_text"] == f"Of {numbers['n_ae']} adverse events in all"
    assert numbers["proc_text"] == f"{numbers['proc_terms']}, {numbers['n_proc']} event(s) in all"


@pytest.mark.parametrize("safety_value, message", [
    ({"adverse_events_collected": "no"}, "safety.adverse_events_collected must be true or false"),
    ({"collected": False}, "safety: unknown key(s) collected"),
])
def test_a_wrong_safety_section_names_the_key(tmp_path, safety_value, message):
    from helpers.trial import TrialFileError

    with pytest.raises(TrialFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _trial_without(tmp_path, lambda raw: raw.update(safety=safety_value))


def test_ascites_present_grade_unknown_is_its_own_category_and_child_pugh_is_missing(folder, trial):
    from helpers.analysis import baseline

    clinical = read_raw(folder / "clinical.csv")
    row = clinical.index[clinical["visit"].eq(trial.baseline_visit.code)][0]
    subject = clinical.at[row, "subject_id"]
    clinical.loc[row, "ascites"] = "present, grade unknown"
    clinical.to_csv(folder / "clinical.csv", index=False, lineterminator="\n")
    _, errors, _ = validate_export(folder, trial)
    assert errors == []
    adam = build_adam(load_export(folder, trial), trial)
    sl = adam["adsl"].set_index("SUBJID").loc[subject]
    assert sl["ASCITES"] == "present, grade unknown" and pd.isna(sl["CPSCORE"]) and pd.isna(sl["CPCLASS"])
    cp = adam["adlb"]
    cp = cp[(cp["USUBJID"] == sl["USUBJID"]) & (cp["PARAMCD"] == "CPSCORE") & (cp["AVISIT"] == trial.baseline_visit.label)]
    assert cp["LBREASND"].iloc[0] == "not derivable: ascites present, grade unknown"
    table = baseline.baseline_summary(adam["adsl"], trial)
    overall = table[(table["group"] == baseline.OVERALL) & table["variable"].str.startswith("Ascites")]
    levels = overall[overall["statistic"] == "n"].set_index("level")["value"]
    assert levels["present, grade unknown"] == 1
    assert overall.loc[overall["statistic"] == "pct", "value"].max() < 100


def test_table_one_shows_no_grade_unknown_row_when_none_was_recorded(adam, trial):
    from helpers.analysis import baseline

    table = baseline.baseline_summary(adam["adsl"], trial)
    assert "present, grade unknown" not in set(table["level"])


def test_synthetic_cohort_without_a_simulation_section_is_reproducible_and_names_its_seed(tmp_path):
    from helpers.chapter import source_text
    from helpers.data.simulation import simulate_export

    trial = _trial_without(tmp_path, lambda raw: raw.pop("simulation"))
    one, two = simulate_export(trial, realistic=False), simulate_export(trial, realistic=False)
    pd.testing.assert_frame_equal(one["randomization"], two["randomization"])
    export = load_export_of(one, trial, tmp_path)
    timing = allocation.check_allocation(export, trial, randomization.stated_allocation_list(trial)).timing
    assert (timing["Finding"] == "").all(), "randomized inside the trial file's accrual window"
    text = source_text("synthetic", trial, None)
    assert "None" not in text
    assert text == "synthetic cohort (seed 1, the book's default: the trial file states no simulation seed)"


def test_design_without_block_sizes_uses_and_names_the_one_default_rule(tmp_path):
    from helpers.analysis import design
    from helpers.report import design as design_report

    trial = _trial_without(tmp_path, lambda raw: raw["randomization"].pop("block_sizes"))
    assert trial.block_sizes == [4]
    reps = design.simulate_design(trial, replicates=2, seed=1, n_jobs=1)
    numbers = design_report.chapter_numbers(design.operating_characteristics(reps, trial), trial, 2)
    assert numbers["block_sizes"] == ("4 (the book's default of twice the ratio total: the trial file states no "
                                      "block sizes)")


def test_adverse_events_in_a_trial_that_did_not_collect_them_are_a_warning(tmp_path, clean_dir):
    trial = _trial_without(tmp_path, lambda raw: raw.update(safety={"adverse_events_collected": False}))
    _, errors, warnings = validate_export(clean_dir, trial)
    assert errors == []
    found = [p for p in warnings if p.rule == "adverse_events_not_collected"]
    assert len(found) == 1 and found[0].file == "events.csv" and found[0].column == "event_type"
    assert "kept out of the safety tables" in found[0].message


def test_an_events_file_without_adverse_events_is_a_warning_when_they_were_collected(folder, trial):
    events = read_raw(folder / "events.csv")
    events[events["event_type"] != "AE"].to_csv(folder / "events.csv", index=False, lineterminator="\n")
    _, errors, warnings = validate_export(folder, trial)
    assert errors == []
    assert [p.rule for p in warnings if p.rule.endswith("adverse_events")] == ["no_adverse_events"]
