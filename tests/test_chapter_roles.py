"""The outcomes and survival chapters say what the trial file's plan says (issue 17): which endpoint is primary and
where it is tested (a continuous primary in the outcomes chapter, survival then supportive), and a composite lead
time-to-event endpoint (DEMO-CKD: kidney failure or death) by its own label and events, with no other disease's words."""
from __future__ import annotations

import re

import pytest

from helpers import paths
from helpers.analysis import outcomes, survival
from helpers.data.adam import build_adam
from helpers.data.loading import load_export
from helpers.data.simulation import simulate_export, write_export
from helpers.report import findings as findings_report
from helpers.report import outcomes as outcomes_report
from helpers.report import survival as survival_report
from helpers.trial import load_trial

from test_findings import continuous_trial_file

# The first trial's disease, scores and procedure (DEMO-CKD's own event label names a kidney transplant).
LIVER_WORDS = re.compile(r"liver|hepat|\bmeld|child[-_ ]?pugh|\bpugh|bilirubin|infusion|catheter|ascites|"
                         r"encephalopath|cirrho|\besld\b", re.IGNORECASE)


def _chapters(trial, folder):
    """The glued numbers of the survival and outcomes chapters on a simulated export of ``trial``, the survival
    results, the ADaM and the outcome results."""
    write_export(simulate_export(trial, realistic=False), folder, trial)
    adam = build_adam(load_export(folder, trial), trial)
    surv = survival.survival_results(adam["adtte"], adam["adsl"], trial)
    out = outcomes.outcome_results(adam["adlb"], adam["adsl"], trial)
    return (survival_report.chapter_numbers(surv, adam["adsl"], trial, "synthetic"),
            outcomes_report.chapter_numbers(out, adam["adsl"], trial, "synthetic"), surv, adam, out)


@pytest.fixture(scope="module")
def continuous(tmp_path_factory):
    trial = load_trial(continuous_trial_file(tmp_path_factory.mktemp("continuous")))
    return trial, *_chapters(trial, tmp_path_factory.mktemp("continuous_export"))


@pytest.fixture(scope="module")
def ckd(tmp_path_factory):
    trial = load_trial(paths.trial_file("DEMO-CKD"))
    return trial, *_chapters(trial, tmp_path_factory.mktemp("ckd_export"))


def test_a_continuous_primary_makes_survival_supportive(continuous):
    trial, surv, *_ = continuous
    assert surv["role"] == ("The primary endpoint of this trial is the change in Albumin from baseline to Week 24, "
                            "analysed in the chapter on outcomes at each visit. Overall survival to week 24, the time "
                            "from randomization to death, is a secondary endpoint: this chapter estimates it by arm and "
                            "compares the arms as supportive evidence.")
    assert surv["tests_role"].startswith("None of these tests is confirmatory: the registered primary test is the "
                                         "MMRM contrast of the change in Albumin from baseline to Week 24")
    assert "as registered" not in surv["summary_measures"] and "all supportive" in surv["summary_measures"]
    assert surv["lead_estimate"] == "Survival"


def test_a_continuous_primary_is_analysed_in_the_outcomes_chapter(continuous):
    trial, _, out, *_ = continuous
    assert out["role"] == ("The primary endpoint is the change in Albumin from baseline to Week 24: this chapter "
                           "analyses it, by its MMRM contrast at week 24. The other 8 endpoints are secondary.")
    assert len(trial.endpoints) == 9 and out["n_holm"] == 8  # the Holm family leaves the primary out
    assert out["primary_effect_sentence"].startswith("For the primary endpoint, the change in Albumin from baseline "
                                                     "to Week 24, the MMRM gives a difference ")
    assert out["death_role"] == "death is a secondary endpoint (overall survival to week 24), analysed as time to event"
    assert out["hierarchy"].startswith("the primary endpoint, change in Albumin from baseline to Week 24, is tested "
                                       "first; only if it is significant at the two-sided 5% level is the key "
                                       "secondary endpoint, the change in MELD score at week 24")


def test_a_time_to_event_primary_keeps_its_registered_test(trial, adam):
    surv = survival_report.chapter_numbers(survival.survival_results(adam["adtte"], adam["adsl"], trial),
                                           adam["adsl"], trial, "synthetic")
    assert surv["role"].startswith("The registered primary outcome is overall survival to week 24: the time from "
                                   "randomization to death.")
    assert surv["tests_role"] == ("Registered primary test: Fisher's exact test on survivors at the horizon; the other "
                                  "tests are supportive.")
    assert surv["summary_measures"].endswith("as registered, the primary test: Fisher's exact test on survivors at "
                                             "the horizon.")
    assert outcomes_report.primary_effect_sentence(None, trial) == ""
    assert outcomes_report.role_text(trial) == (
        "The primary endpoint, overall survival to week 24, is a time-to-event endpoint analysed in the survival "
        "chapter; every endpoint of this chapter is secondary.")


def test_a_composite_lead_endpoint_is_named_by_its_label_and_events(ckd):
    trial, surv, out, *_ = ckd
    assert trial.lead_tte.code == "KFD" and trial.primary_test == "logrank"
    assert surv["role"] == ("The registered primary outcome is kidney failure or death to week 52: the time from "
                            "randomization to kidney failure (dialysis or kidney transplant) or death, whichever came "
                            "first. This chapter estimates it by arm and compares the arms.")
    assert surv["tests_role"] == "Registered primary test: log-rank test; the other tests are supportive."
    assert surv["lead_estimate"] == "Event-free probability"
    assert surv["lead_fisher_name"] == "Fisher's exact test on participants event-free at the horizon"
    assert re.fullmatch(r"\d+ events", surv["lead_events"])
    for key in ("role", "summary_measures", "tests_role", "lead_estimate", "lead_fisher_name", "lead_events"):
        assert not re.search(r"surviv|deaths", surv[key], re.IGNORECASE), (key, surv[key])
    assert out["death_role"] == ("death is one of the events of the primary endpoint (kidney failure or death to "
                                 "week 52), analysed as time to event")
    assert out["primary_effect_sentence"] == ""


def test_the_kidney_trial_names_no_liver_word(ckd):
    trial, surv, out, results, adam, out_results = ckd
    texts = [*map(str, surv.values()), *map(str, out.values()),
             survival_report.show_event_counts(adam["adtte"], adam["adsl"], trial)._repr_markdown_(),
             survival_report.show_summary(results, trial)._repr_markdown_(),
             survival_report.show_vital_status(adam["adtte"], adam["adsl"], trial)._repr_markdown_(),
             findings_report.verdicts(results, out_results["mmrm"], trial)["verdict"],
             survival_report.show_intercurrent_events(adam["adsl"], adam["adlb"], trial)._repr_markdown_()]
    found = [m.group(0) for t in texts for m in LIVER_WORDS.finditer(t)]
    assert not found, found
    assert "Event status at day 364" in texts[-3]
    assert "Kaplan-Meier event-free probability at the horizon" in texts[-4]
    assert "event-free probability at day 364 was" in texts[-2] and "log-rank test P" in texts[-2]
    assert "Event-free (%)" in survival_report.show_km_numbers(survival.km_estimates(adam["adtte"], trial), adam["adsl"],
                                                                trial)._repr_markdown_()


@pytest.mark.parametrize("notebook, chapter", [("04_outcomes", 2), ("05_survival", 1)])
def test_every_phrase_the_chapter_glues_is_computed(ckd, continuous, notebook, chapter):
    """Each {glue:text}`key` of the chapter's prose is a key of its chapter_numbers (besides the verdict), for both
    trials."""
    import nbformat

    cells = nbformat.read(paths.ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4).cells
    keys = set(re.findall(r"\{glue:text\}`([^`]+)`", "\n".join(c.source for c in cells if c.cell_type == "markdown")))
    for numbers in (ckd[chapter], continuous[chapter]):
        assert keys - {"verdict"} <= set(numbers), keys - {"verdict"} - set(numbers)
