"""CONSORT flow: arithmetic of every box, hand counts from the raw files, agreement with ADSL, the figure."""
import pandas as pd
import pytest

from helpers.analysis import consort
from helpers.data.adam import build_adam, derive_disposition
from helpers.data.loading import load_export, read_raw
from helpers.report import plots
from helpers.report.consort import box_texts, consort_table
from helpers.trial import load_trial


@pytest.fixture(scope="module")
def flow(export, trial, adam):
    return consort.consort_flow(export, trial, adam["adsl"])


@pytest.fixture(scope="module")
def raw(clean_dir):
    return {n: read_raw(clean_dir / f"{n}.csv") for n in ("screening", "randomization", "dosing", "events")}


def n(flow, box):
    return int(flow.set_index("box").at[box, "n"])


def test_children_add_up_to_parents(flow):
    assert consort.arithmetic_problems(flow) == []
    assert n(flow, "assessed") == n(flow, "excluded") + n(flow, "randomized")
    for arm in ("PV", "HA"):
        alloc = n(flow, f"allocated:{arm}")
        assert alloc == n(flow, f"received:{arm}") + n(flow, f"not_received:{arm}")
        assert alloc == n(flow, f"discontinued:{arm}") + n(flow, f"completed:{arm}") + n(flow, f"ongoing:{arm}")
        assert alloc == n(flow, f"analysed:{arm}") + n(flow, f"not_analysed:{arm}")


def test_arithmetic_check_catches_a_wrong_box(flow):
    broken = flow.copy()
    broken.loc[broken["box"] == "discontinued:PV:death", "n"] += 1
    problems = consort.arithmetic_problems(broken)
    assert len(problems) == 1 and problems[0].startswith("discontinued:PV:")


def test_counts_match_hand_counts_from_raw_files(flow, raw, trial):
    sc, rand, inf, ev = raw["screening"], raw["randomization"], raw["dosing"], raw["events"]
    assert n(flow, "assessed") == len(sc)
    assert n(flow, "randomized") == len(rand)
    assert n(flow, "excluded") == int((~sc["screening_id"].isin(rand["screening_id"])).sum())
    exclusions = [c.column for c in trial.eligibility if c.kind == "exclusion"]
    if "age" in sc and (sc["age"] != "").all():
        age = pd.to_numeric(sc["age"])
    else:
        birth, on = pd.to_datetime(sc["birth_date"]), pd.to_datetime(sc["screening_date"])
        age = on.dt.year - birth.dt.year - ((on.dt.month * 100 + on.dt.day) < (birth.dt.month * 100 + birth.dt.day))
    other_fail = ~age.between(18, 80) | (sc["esld"] != "Y") | (sc[exclusions] == "Y").any(axis=1)
    assert n(flow, "excluded:criteria") == int(other_fail.sum())
    assert n(flow, "excluded:declined") == int(((sc["consent"] == "N") & ~other_fail).sum())
    first = inf[inf["dose_no"] == "1"].set_index("subject_id")["arm_received"]
    terminal = ev[ev["event_type"].isin(["DEATH", "TRANSPLANT", "WITHDRAWAL"])]
    for arm in ("PV", "HA"):
        ids = rand.loc[rand["arm"] == arm, "subject_id"]
        assert n(flow, f"allocated:{arm}") == len(ids)
        assert n(flow, f"received:{arm}") == int((ids.map(first) == arm).sum())
        mine = terminal[terminal["subject_id"].isin(ids)]
        assert n(flow, f"discontinued:{arm}") == mine["subject_id"].nunique()
        assert n(flow, f"discontinued:{arm}:death") == int((mine["event_type"] == "DEATH").sum())
        assert n(flow, f"discontinued:{arm}:withdrawal:withdrew consent") == int(
            ((mine["event_type"] == "WITHDRAWAL") & (mine["term"] == "withdrew consent")).sum())
        done = ev[(ev["event_type"] == "COMPLETED") & ev["subject_id"].isin(ids)]
        assert n(flow, f"completed:{arm}") == len(done)


def test_agrees_with_adsl(flow, adam):
    adsl = adam["adsl"]
    for arm in ("PV", "HA"):
        sl = adsl[adsl["ARMCD"] == arm]
        assert n(flow, f"allocated:{arm}") == len(sl) == n(flow, f"analysed:{arm}")
        assert n(flow, f"discontinued:{arm}") == int((sl["EOSSTT"] == "DISCONTINUED").sum())
        assert n(flow, f"completed:{arm}") == int((sl["EOSSTT"] == "COMPLETED").sum())
        assert n(flow, f"discontinued:{arm}:death") == int((sl["DCSREAS"] == "DEATH").sum())
        assert n(flow, f"received:{arm}") == int((sl["TRT01A"] == sl["TRT01P"]).sum())


def test_figure_draws_the_flow_numbers(flow, trial):
    fig = plots.plot_consort(flow, trial)
    text = "\n".join(t.get_text() for t in fig.axes[0].texts)
    for box in ["assessed", "excluded", "randomized", "excluded:criteria", "excluded:declined"] + \
            [f"{b}:{a}" for a in ("PV", "HA") for b in ("allocated", "received", "not_received", "discontinued",
                                                        "completed", "analysed", "not_analysed")]:
        row = flow.set_index("box").loc[box]
        assert f"{row['label']} (n={row['n']})" in text, box
    shown = flow[flow["box"].str.startswith("excluded:criteria:") & (flow["n"] > 0)]
    assert all(f"{lab} (n={k})" in text for lab, k in zip(shown["label"], shown["n"]))
    assert len(fig.axes[0].patches) + len(fig.axes[0].texts) > 10


def test_deviation_and_missing_infusion_counted(export_copy, trial):
    inf = read_raw(export_copy / "dosing.csv")
    rand = read_raw(export_copy / "randomization.csv").set_index("subject_id")
    first = inf[inf["dose_no"] == "1"]
    switched = first["subject_id"].iloc[0]
    other = next(a for a in trial.arm_codes if a != rand.at[switched, "arm"])
    inf.loc[inf["subject_id"] == switched, "arm_received"] = other
    inf.to_csv(export_copy / "dosing.csv", index=False)
    export = load_export(export_copy, trial)
    flow = consort.consort_flow(export, trial, build_adam(export, trial)["adsl"])
    arm = rand.at[switched, "arm"]
    assert n(flow, f"not_received:{arm}:other") == 1 and consort.arithmetic_problems(flow) == []


def test_sister_trial_flow_adds_up():
    from helpers.pipeline import load_cohort
    c = load_cohort("synthetic", "NCT06242405", 11)
    flow = consort.consort_flow(c.export, c.trial, c.adsl)
    assert consort.arithmetic_problems(flow) == []
    assert n(flow, "randomized") == load_trial("NCT06242405").planned_n == len(c.adsl)
    assert {f"allocated:{a}" for a in ("SINGLE", "DOUBLE")} <= set(flow["box"])


# --- a trial without a dosing file, at an interim look (hand-made export) ---------------------

from dataclasses import replace  # noqa: E402

from helpers.data.loading import Export  # noqa: E402


def _demo_export(trial):
    """Five screened (one too old, one declining consent), three randomized: one died, one completed, one ongoing."""
    flags = {c.column: "N" if c.kind == "exclusion" else "Y" for c in trial.eligibility}
    screening = pd.DataFrame([{"screening_id": f"S{i}", "age": age, **flags, "consent": consent}
                              for i, (age, consent) in enumerate([(50, "Y"), (60, "Y"), (70, "Y"), (76, "Y"),
                                                                  (40, "N")], start=1)])
    randomization = pd.DataFrame({"subject_id": ["01-001", "01-002", "01-003"], "screening_id": ["S1", "S2", "S3"],
                                  "arm": ["PBO", "DRUG", "DRUG"]})
    infusion = pd.DataFrame({"subject_id": pd.Series(dtype="string"), "dose_no": pd.Series(dtype="Int64"),
                             "arm_received": pd.Series(dtype="string")})
    events = pd.DataFrame({"subject_id": ["01-001", "01-003"], "event_type": ["DEATH", "COMPLETED"],
                           "term": ["liver failure", pd.NA],
                           "start_date": pd.to_datetime(["2026-02-01", "2026-04-01"])})
    return Export(folder=None, tables={"screening": screening, "randomization": randomization,
                                       "dosing": infusion, "events": events})


def _demo_adsl(export, cutoff=None, trial=None):
    """ADSL of the hand-made export: everyone randomized in ITT, end of study as ``derive_disposition`` ranks it."""
    adsl = pd.DataFrame({"SUBJID": export["randomization"]["subject_id"], "ITTFL": "Y",
                         "DCUTDT": pd.Timestamp(cutoff) if cutoff else pd.NaT})
    return derive_disposition(adsl, export["events"], trial or load_trial("DEMO-ORAL"))


def test_no_dosing_file_counts_randomized_as_started_and_interim_is_ongoing():
    demo = load_trial("DEMO-ORAL")
    export = _demo_export(demo)
    flow = consort.consort_flow(export, demo, _demo_adsl(export))
    assert consort.arithmetic_problems(flow) == []
    assert (n(flow, "assessed"), n(flow, "excluded"), n(flow, "randomized")) == (5, 2, 3)
    assert (n(flow, "excluded:criteria"), n(flow, "excluded:criteria:age"), n(flow, "excluded:declined")) == (1, 1, 1)
    assert (n(flow, "received:PBO"), n(flow, "received:DRUG"), n(flow, "not_received:DRUG")) == (1, 2, 0)
    assert (n(flow, "discontinued:PBO:death"), n(flow, "completed:DRUG"), n(flow, "ongoing:DRUG")) == (1, 1, 1)
    labels = flow.set_index("box")["label"]
    assert labels["received:DRUG"] == "Started allocated dose at randomization"
    assert labels["ongoing:DRUG"] == "In follow-up at the data cut-off"
    texts = "\n".join(box_texts(flow, demo).values())
    assert "dosing" not in texts.lower() and "In follow-up at the data cut-off (n=1)" in texts


def test_empty_dosing_table_when_dosing_is_required_means_no_treatment():
    demo = load_trial("DEMO-ORAL")
    first_dose = replace(demo, treatment=replace(demo.treatment, start="first_dose"), cutoff=None)
    export = _demo_export(demo)
    flow = consort.consort_flow(export, first_dose, _demo_adsl(export))
    assert (n(flow, "received:DRUG"), n(flow, "not_received:DRUG:none")) == (0, 2)
    labels = flow.set_index("box")["label"]
    assert labels["not_received:DRUG:none"] == "No dose" and labels["ongoing:DRUG"] == "Follow-up ongoing"
    assert consort.arithmetic_problems(flow) == []


def test_interim_read_from_adsl_cutoff():
    demo = replace(load_trial("DEMO-ORAL"), cutoff=None)
    export = _demo_export(demo)
    flow = consort.consort_flow(export, demo, _demo_adsl(export, "2026-05-05"))
    assert flow.set_index("box").at["ongoing:DRUG", "label"] == "In follow-up at the data cut-off"


def test_end_of_study_is_read_from_adsl_not_the_events_file():
    demo = replace(load_trial("DEMO-ORAL"), cutoff=None)
    export = _demo_export(demo)
    adsl = _demo_adsl(export)
    adsl.loc[adsl["SUBJID"] == "01-002", ["EOSSTT", "DCSREAS"]] = ["DISCONTINUED", "LOST TO FOLLOW-UP"]
    flow = consort.consort_flow(export, demo, adsl)
    assert (n(flow, "discontinued:DRUG"), n(flow, "discontinued:DRUG:withdrawal"),
            n(flow, "discontinued:DRUG:withdrawal:lost to follow-up"), n(flow, "ongoing:DRUG")) == (1, 1, 1, 0)
    assert consort.arithmetic_problems(flow) == []


def test_consort_table_lists_the_boxes_with_their_numbers(flow, trial):
    table = consort_table(flow, trial)
    assert list(table.columns) == ["Group", "Box", "n"]
    assert table.iloc[0].tolist() == ["All screened", "Assessed for eligibility", n(flow, "assessed")]
    allocated = table[table["Box"].str.startswith("Allocated to")]
    assert allocated["Group"].tolist() == [a.label for a in trial.arms]
    assert allocated["n"].tolist() == [n(flow, f"allocated:{a.code}") for a in trial.arms]
