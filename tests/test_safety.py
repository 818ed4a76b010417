"""Adverse-event tables against counts taken straight from the raw events and infusion files."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from helpers.analysis import safety
from helpers.data.loading import Export
from helpers.data.simulation import simulate_export, write_export
from helpers.pipeline import load_cohort
from helpers.report import safety as report
from helpers.trial import load_trial


def _raw(export, trial):
    """Events joined with the arm actually received at the first infusion (the safety population)."""
    inf = export["dosing"].sort_values(["subject_id", "dose_no"]).drop_duplicates("subject_id")
    arm = inf.set_index("subject_id")["arm_received"].astype(str).map(trial.arm_labels)
    ev = export["events"][export["events"]["subject_id"].isin(arm.index)]
    return ev.assign(arm=ev["subject_id"].map(arm)), arm


@pytest.fixture(scope="module")
def tables(export, adam, trial):
    adae = safety.build_adae(export, adam["adsl"], trial)
    dth = safety.deaths(export, adam["adsl"], trial)
    return adae, dth


def test_safety_population_is_everyone_infused_by_arm_received(export, adam, trial):
    _, arm = _raw(export, trial)
    assert safety.safety_n(adam["adsl"], trial) == {a.label: int((arm == a.label).sum()) for a in trial.arms}
    assert report.safety_header(adam["adsl"], trial)[trial.arms[0].label].endswith(f"(N={(arm == trial.arms[0].label).sum()})")


def test_ae_summary_counts_equal_raw_events_file(export, adam, trial, tables):
    ev, _ = _raw(export, trial)
    ae = ev[ev["event_type"] == "AE"]
    subsets = {"ANY": ae, "SERIOUS": ae[ae["serious"] == "Y"],
               "RELATED": ae[ae["relatedness"].isin(["possible", "probable", "definite"])],
               "WITHDRAWAL": ae[ae["led_to_withdrawal"] == "Y"], "DEATH": ev[ev["event_type"] == "DEATH"]}
    summary = safety.ae_summary(*tables, adam["adsl"], trial).set_index(["CATEGORY", "ARM"])
    assert summary.index.get_level_values(0).unique().tolist() == list(subsets)
    for code, rows in subsets.items():
        for a in trial.arms:
            mine = rows[rows["arm"] == a.label]
            got = summary.loc[(code, a.label)]
            assert got["N_EVENTS"] == len(mine), code
            assert got["N_PARTICIPANTS"] == mine["subject_id"].nunique(), code
            assert got["PCT"] == pytest.approx(100 * mine["subject_id"].nunique() / got["N"])
    assert summary.xs("ANY", level=0)["N_EVENTS"].sum() == (export["events"]["event_type"] == "AE").sum()


def test_ae_by_term_counts_equal_raw_and_are_sorted_by_frequency(export, adam, trial, tables):
    ev, _ = _raw(export, trial)
    ae = ev[ev["event_type"] == "AE"]
    by_term = safety.ae_by_term(tables[0], adam["adsl"], trial)
    raw = ae.groupby(["term", "arm"]).agg(p=("subject_id", "nunique"), e=("subject_id", "size"))
    for r in by_term.itertuples():
        p, e = raw["p"].get((r.TERM, r.ARM), 0), raw["e"].get((r.TERM, r.ARM), 0)
        assert (r.N_PARTICIPANTS, r.N_EVENTS) == (p, e), r.TERM
    assert set(by_term["TERM"]) == set(ae["term"])
    assert by_term["N_EVENTS"].sum() == len(ae)
    per_term = by_term.groupby("TERM", sort=False)["N_PARTICIPANTS"].sum().tolist()
    assert per_term == sorted(per_term, reverse=True)


def test_procedure_terms_are_matched_and_counted(adam, trial, tables):
    terms = pd.Series(["Puncture-site haematoma", "femoral artery pseudoaneurysm", "fever", "catheter occlusion",
                       "post-embolization-like pain", "abdominal pain"])
    assert safety.is_procedure_term(terms, trial.procedure_terms).tolist() == [True, True, False, True, True, False]
    proc = safety.procedure_events(tables[0], adam["adsl"], trial)
    assert (proc["CATEGORY"] == "PROCEDURE").all()
    assert safety.is_procedure_term(proc["TERM"], trial.procedure_terms).all()
    adae = tables[0]
    expected = adae[safety.is_procedure_term(adae["AETERM"], trial.procedure_terms)]
    assert proc["N_EVENTS"].sum() == len(expected)


def test_treatment_emergent_flag_excludes_events_before_the_first_infusion(export, adam, trial):
    ev = export["events"].copy()
    first = ev[ev["event_type"] == "AE"].iloc[[0]].copy()
    trtsdt = adam["adsl"].set_index("SUBJID").loc[first["subject_id"].iloc[0], "TRTSDT"]
    first["start_date"] = trtsdt - pd.Timedelta(days=3)
    first["event_id"] = ev["event_id"].max() + 1
    changed = Export(export.folder, {**export.tables, "events": pd.concat([ev, first], ignore_index=True)})
    adae = safety.build_adae(changed, adam["adsl"], trial)
    assert (adae["TRTEMFL"] == "N").sum() == 1 and adae.loc[adae["TRTEMFL"] == "N", "ASTDY"].iloc[0] == -3
    before = safety.ae_summary(safety.build_adae(export, adam["adsl"], trial), safety.deaths(export, adam["adsl"], trial),
                               adam["adsl"], trial)
    after = safety.ae_summary(adae, safety.deaths(changed, adam["adsl"], trial), adam["adsl"], trial)
    pd.testing.assert_frame_equal(before, after)


def test_listing_holds_every_death_and_serious_event_by_study_id_only(export, adam, trial, tables):
    ev, _ = _raw(export, trial)
    listing = report.serious_listing(*tables)
    n_sae = ((ev["event_type"] == "AE") & (ev["serious"] == "Y")).sum()
    n_death = (ev["event_type"] == "DEATH").sum()
    assert (listing["Record"] == "Serious AE").sum() == n_sae and (listing["Record"] == "Death").sum() == n_death
    assert listing["Participant"].str.startswith(trial.id + "-").all()
    assert not {"name", "phone", "id_number", "birth_date", "SUBJID"} & set(listing.columns)
    fatal = listing[listing["Outcome"] == "Fatal"]
    assert set(fatal["Participant"]) <= set(listing.loc[listing["Record"] == "Death", "Participant"])


def test_display_table_prints_n_percent_and_events(adam, trial, tables):
    summary = safety.ae_summary(*tables, adam["adsl"], trial)
    header = report.safety_header(adam["adsl"], trial)
    table = report.display_table(summary, header)
    assert table.iloc[:, 0].tolist() == [report.CATEGORY_LABELS[code] for code in safety.CATEGORIES]
    arm = trial.arms[0].label
    any_row = summary[(summary["CATEGORY"] == "ANY") & (summary["ARM"] == arm)].iloc[0]
    assert table.loc[0, f"{header[arm]}: participants, n (%)"] == f"{any_row.N_PARTICIPANTS} ({any_row.PCT:.1f}%)"
    assert table.loc[0, f"{header[arm]}: events"] == any_row.N_EVENTS


def test_results_are_tidy(adam, trial, tables):
    res = safety.adverse_event_results(*tables, adam["adsl"], trial)
    assert list(res.columns) == ["CATEGORY", "TERM", "ARM", "N", "N_PARTICIPANTS", "PCT", "N_EVENTS"]
    assert set(res["CATEGORY"]) >= set(safety.CATEGORIES) | {"TERM"}
    assert not res.duplicated(["CATEGORY", "TERM", "ARM"]).any()
    assert res[["N", "N_PARTICIPANTS", "PCT", "N_EVENTS"]].dtypes.map(lambda d: d.kind in "if").all()


def test_sister_trial_runs_through_the_same_helpers(tmp_path):
    sister = load_trial("NCT06242405")
    write_export(simulate_export(sister, seed=4), tmp_path)
    c = load_cohort(str(tmp_path), "NCT06242405")
    adae = safety.build_adae(c.export, c.adsl, sister)
    res = safety.adverse_event_results(adae, safety.deaths(c.export, c.adsl, sister), c.adsl, sister)
    assert set(res["ARM"]) == set(sister.arm_labels.values())
    assert res.loc[res["CATEGORY"] == "ANY", "N_EVENTS"].sum() == (c.export["events"]["event_type"] == "AE").sum()
    assert res["PCT"].dtype.kind == "f"


def test_summary_text_reads_the_summary_rows():
    results = pd.DataFrame({"CATEGORY": ["SERIOUS", "SERIOUS", "ANY"], "ARM": ["Peripheral vein", "Hepatic artery", "X"],
                            "N": [16, 16, 16], "N_PARTICIPANTS": [6, 0, 16], "PCT": [37.5, 0.0, 100.0],
                            "N_EVENTS": [7, 0, 30]})
    assert report.summary_text(results, "SERIOUS") == ("Peripheral vein 6 of 16 (37.5%), 7 event(s); "
                                                       "Hepatic artery 0 of 16 (0.0%), 0 event(s)")


def test_chapter_counts_and_tables_read_the_results(adam, trial, tables):
    res = safety.adverse_event_results(*tables, adam["adsl"], trial)
    saf = safety.safety_population(adam["adsl"])
    n = safety.counts(res, adam["adsl"])
    assert n["n_safety"] == len(saf) and n["n_switched"] == (saf["TRT01A"] != saf["TRT01P"]).sum()
    assert n["n_ae"] == (tables[0]["TRTEMFL"] == "Y").sum()
    assert n["n_proc"] == res.loc[res["CATEGORY"] == "PROCEDURE", "N_EVENTS"].sum()
    assert all(type(v) is int for v in n.values())
    assert safety.procedure_terms(res) == list(dict.fromkeys(res.loc[res["CATEGORY"] == "PROCEDURE", "TERM"]))
    assert set(safety.rows_of(res)["CATEGORY"]) == set(safety.CATEGORIES)
    header = report.safety_header(adam["adsl"], trial)
    assert report.summary_table(res, header).columns[0] == "Participants with at least one"
    assert report.term_table(res, header)["Adverse event"].tolist() == list(dict.fromkeys(safety.rows_of(res, "TERM")["TERM"]))
    numbers = report.chapter_numbers(res, adam["adsl"], trial, "synthetic cohort")
    assert list(numbers) == ["source", "n_safety", "n_safety_arm", "n_switched", "n_ae", "ae_any", "ae_serious",
                             "ae_related", "ae_withdrawal", "ae_death", "proc_terms", "proc_matched", "n_proc", "ae_text",
                             "proc_text"]
    assert numbers["ae_serious"] == report.summary_text(res, "SERIOUS")
    assert numbers["proc_terms"] == (", ".join(safety.procedure_terms(res)) or "none")


def test_procedure_terms_come_from_the_trial_file(adam, trial, tables):
    """NCT06984497 lists its catheter and puncture terms; a trial file without ``safety: procedure_terms`` (an oral
    drug) matches none and says so."""
    assert "catheter" in trial.procedure_terms and "puncture" in report.procedure_matched(trial)
    oral = load_trial("DEMO-ORAL")
    assert oral.procedure_terms == ()
    assert not safety.is_procedure_term(pd.Series(["catheter occlusion", "fever"]), oral.procedure_terms).any()
    res = safety.adverse_event_results(*tables, adam["adsl"], replace(trial, procedure_terms=()))
    assert "PROCEDURE" not in set(res["CATEGORY"])
    assert "lists no procedure-related terms" in report.procedure_matched(oral)
    assert report.procedure_notes(oral) == (None, "Not applicable: the trial file lists no procedure-related terms.")
    assert report.procedure_notes(trial)[0].startswith("Terms matched: puncture, haematoma")
