"""Every sentence of the book comes from the trial file or is neutral: no other trial's words (issue 17, item 6)."""
from __future__ import annotations

import dataclasses

from helpers import pipeline
from helpers.report import design as design_report
from helpers.report import findings as findings_report
from helpers.report import randomization as randomization_report
from helpers.report import safety as safety_report
from helpers.report.prose import population_text, whole_weeks
from helpers.trial import Stratum, load_trial
from test_findings import mmrm_rows, survival_rows

ORAL = load_trial("DEMO-ORAL")


def _without(trial, *kinds):
    return dataclasses.replace(trial, eligibility=tuple(k for k in trial.eligibility if k.kind not in kinds))


def test_eligibility_criteria_are_named_from_the_trial_file_and_none_said_so():
    text = randomization_report.criteria_text(ORAL)
    assert text == "decompensated cirrhosis and signed informed consent (inclusion), and exclusion criteria 1 to 4"
    assert "liver" not in text
    assert randomization_report.criteria_text(_without(ORAL, "exclusion")).endswith("and no exclusion criteria")
    assert "exclusion criterion 1" in randomization_report.criteria_text(
        dataclasses.replace(ORAL, eligibility=ORAL.eligibility[:3]))
    hiv = dataclasses.replace(ORAL, eligibility=(dataclasses.replace(ORAL.eligibility[0], label="HIV infection"),))
    assert randomization_report.criteria_text(hiv).startswith("HIV infection (inclusion)")


def test_chance_sentence_depends_on_the_number_per_arm():
    assert randomization_report.chance_text(16).startswith("With so few participants per arm (as few as 16)")
    big = randomization_report.chance_text(156)
    assert "so few" not in big and "156" in big
    assert randomization_report.chance_text(randomization_report.SMALL_ARM).startswith("Even with")


def test_population_comes_from_the_trial_file():
    assert population_text(ORAL) == "adults with decompensated cirrhosis"
    assert population_text(dataclasses.replace(ORAL, population="")) == "participants"


def test_durations_are_whole_weeks():
    assert whole_weeks(168) == "24" and whole_weeks(1461) == "209"


def test_survival_chapter_names_the_registered_primary_test(adam, trial):
    from helpers.analysis import survival
    from helpers.report import survival as survival_report

    results = survival.survival_results(adam["adtte"], adam["adsl"], trial)
    logrank = dataclasses.replace(trial, primary_test="logrank")
    assert survival_report.chapter_numbers(results, adam["adsl"], logrank, "x")["primary_test"] == "log-rank test"
    assert survival_report.chapter_numbers(results, adam["adsl"], trial, "x")["primary_test"].startswith("Fisher")


def test_block_sizes_are_stated_or_said_to_be_missing():
    assert "block sizes 2 or 4," in pipeline.trial_markdown(ORAL)
    none = dataclasses.replace(ORAL, randomization=dataclasses.replace(ORAL.randomization, stated_block_sizes=()))
    page = pipeline.trial_markdown(none)
    assert "block sizes not stated in the trial file," in page and "block size(s)" not in page


def test_design_chapter_states_its_block_sizes():
    assert design_report.simulated_blocks_text(ORAL) == "2, 4"
    none = dataclasses.replace(ORAL, randomization=dataclasses.replace(ORAL.randomization, stated_block_sizes=()))
    assert design_report.simulated_blocks_text(none).startswith("4 (the book's default of twice the ratio total")


def test_design_chapter_seed_and_key_endpoint_words():
    assert design_report.seed_text(20260106) == "seeded by 20260106"
    assert "None" not in design_report.seed_text(None) and "no simulation seed" in design_report.seed_text(None)


def test_arm_labels_keep_their_case_in_prose(trial):
    drug = dataclasses.replace(trial, arms=tuple(dataclasses.replace(a, label="Zorbex") if a.code != trial.control_arm
                                                  else a for a in trial.arms))
    verdicts = findings_report.verdicts(survival_rows(drug, 0.2), mmrm_rows(drug, 0.01), drug)
    assert "with Zorbex versus" in verdicts["verdict_primary"] and "zorbex" not in verdicts["verdict_primary"]
    assert "Zorbex versus Peripheral vein" in verdicts["verdict_key"]


def test_the_blinded_summary_names_the_masked_arms_as_labelled(trial):
    b = trial.blinded("key")
    verdicts = findings_report.verdicts(survival_rows(b, 0.2), mmrm_rows(b, 0.01), b)
    assert "Arm B versus Arm A" in verdicts["verdict_key"] and "arm b" not in verdicts["verdict_key"]


def test_intro_says_which_data_the_build_runs_on():
    assert "synthetic cohort" in pipeline.data_source_markdown("synthetic", "synthetic cohort (seed 1)")
    real = pipeline.data_source_markdown("/data/export", "site export export")
    assert "synthetic" not in real.lower() and "site export export" in real


def test_procedure_terms_are_the_trial_files(trial):
    assert ORAL.procedure_terms == () and "catheter" in trial.procedure_terms
    assert "catheter" not in safety_report.procedure_matched(ORAL)


def test_key_derivation_is_cited_only_for_a_derived_score(trial):
    """No MELD reference for bilirubin: the design chapter names how the key endpoint is obtained, citing no score."""
    assert "kamath2001" not in (pipeline.paths.NOTEBOOKS / "08_design.ipynb").read_text()
    assert design_report.key_derivation(ORAL.endpoint("TBIL")) == "; the Total bilirubin is one of them"
    assert design_report.key_derivation(trial.endpoint("MELD")).startswith(", and the MELD score is derived")


def test_the_allocation_sentence_names_the_strata_or_says_unstratified(trial):
    stratified = dataclasses.replace(trial, randomization=dataclasses.replace(trial.randomization, strata=(Stratum("SITE", ("1", "2")), Stratum("AGEGR"))))
    assert randomization_report.strata_text(trial) == "unstratified"
    assert randomization_report.strata_text(stratified) == "stratified by SITE, AGEGR"


def test_the_trial_page_says_how_transplantation_is_handled_in_plain_words(trial):
    assert "Liver transplant censors follow-up for overall survival to week 24" in pipeline.trial_markdown(trial)
    event = dataclasses.replace(trial, time_to_event=(dataclasses.replace(trial.tte("OS"), events=("DEATH", "TRANSPLANT"), censors=()),))
    page = pipeline.trial_markdown(event)
    assert "Liver transplant counts as an event" in page and "evented" not in page and "liver" not in page.split("**Primary")[1].split("\n")[0]
