"""CONSORT flow: arithmetic of every box, hand counts from the raw files, agreement with ADSL, the figure."""
import pandas as pd
import pytest

from helpers import consort, paths
from helpers.adam import build_adam
from helpers.loading import load_export, read_raw
from helpers.trial import load_trial


@pytest.fixture(scope="module")
def flow(export, trial, adam):
    return consort.consort_flow(export, trial, adam["adsl"])


@pytest.fixture(scope="module")
def raw():
    return {n: read_raw(paths.SYNTHETIC / f"{n}.csv") for n in ("screening", "randomization", "infusion", "events")}


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


def test_counts_match_hand_counts_from_raw_files(flow, raw):
    sc, rand, inf, ev = raw["screening"], raw["randomization"], raw["infusion"], raw["events"]
    assert n(flow, "assessed") == len(sc)
    assert n(flow, "randomized") == len(rand)
    assert n(flow, "excluded") == int((~sc["screening_id"].isin(rand["screening_id"])).sum())
    exclusions = [c for c in sc.columns if c not in ("screening_id", "name", "phone", "id_number", "birth_date", "sex",
                                                     "screening_date", "etiology", "esld", "consent")]
    birth, on = pd.to_datetime(sc["birth_date"]), pd.to_datetime(sc["screening_date"])
    age = on.dt.year - birth.dt.year - ((on.dt.month * 100 + on.dt.day) < (birth.dt.month * 100 + birth.dt.day))
    other_fail = ~age.between(18, 80) | (sc["esld"] != "Y") | (sc[exclusions] == "Y").any(axis=1)
    assert n(flow, "excluded:criteria") == int(other_fail.sum())
    assert n(flow, "excluded:declined") == int(((sc["consent"] == "N") & ~other_fail).sum())
    first = inf[inf["infusion_no"] == "1"].set_index("subject_id")["arm_received"]
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
    fig = consort.plot_consort(flow, trial)
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
    inf = read_raw(export_copy / "infusion.csv")
    rand = read_raw(export_copy / "randomization.csv").set_index("subject_id")
    first = inf[inf["infusion_no"] == "1"]
    switched = first["subject_id"].iloc[0]
    other = next(a for a in trial.arm_codes if a != rand.at[switched, "arm"])
    inf.loc[inf["subject_id"] == switched, "arm_received"] = other
    inf.to_csv(export_copy / "infusion.csv", index=False)
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
