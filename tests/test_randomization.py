"""Permuted-block allocation lists, the simulator drawing from them, and the check of the realized allocation."""
import dataclasses
import numpy as np
import pandas as pd
import pytest

from helpers.data.randomization import allocation_list, permuted_blocks
from helpers.trial import Stratum, load_trial


def _complete_blocks(frame):
    return [b for _, b in frame.groupby("block") if len(b) == b["block_size"].iloc[0]]


def test_columns_and_sequence():
    frame = permuted_blocks(["PV", "HA"], [1, 1], [4], 10, np.random.default_rng(1))
    assert list(frame.columns) == ["seq", "block", "block_size", "arm"]
    assert frame["seq"].tolist() == list(range(1, len(frame) + 1))
    assert frame["block"].is_monotonic_increasing and frame["block"].iloc[0] == 1


def test_whole_blocks_cover_n():
    frame = permuted_blocks(["PV", "HA"], [1, 1], [4], 10, np.random.default_rng(1))
    assert len(frame) == 12
    assert all(len(b) == 4 for b in _complete_blocks(frame)) and frame["block"].nunique() == 3


@pytest.mark.parametrize("seed", range(20))
def test_every_block_balanced_and_sizes_allowed(seed):
    frame = permuted_blocks(["SINGLE", "DOUBLE"], [1, 1], [4, 6], 92, np.random.default_rng(seed))
    assert set(frame["block_size"]) <= {4, 6}
    for block in _complete_blocks(frame):
        counts = block["arm"].value_counts()
        assert counts["SINGLE"] == counts["DOUBLE"] == len(block) // 2
    assert (frame.groupby("block").size() == frame.groupby("block")["block_size"].first()).all()


def test_both_sizes_used_when_two_allowed():
    frame = permuted_blocks(["A", "B"], [1, 1], [4, 6], 200, np.random.default_rng(3))
    assert set(frame["block_size"]) == {4, 6}


def test_two_to_one_ratio():
    frame = permuted_blocks(["T", "C"], [2, 1], [3, 6], 60, np.random.default_rng(7))
    for block in _complete_blocks(frame):
        counts = block["arm"].value_counts()
        assert counts["T"] == 2 * counts["C"]
    assert abs((frame["arm"] == "T").mean() - 2 / 3) < 1e-9


def test_deterministic_with_seed_and_seeds_differ():
    a = permuted_blocks(["PV", "HA"], [1, 1], [4], 32, np.random.default_rng(42))
    b = permuted_blocks(["PV", "HA"], [1, 1], [4], 32, np.random.default_rng(42))
    c = permuted_blocks(["PV", "HA"], [1, 1], [4], 32, np.random.default_rng(43))
    pd.testing.assert_frame_equal(a, b)
    assert a["arm"].tolist() != c["arm"].tolist()


def test_blocks_are_not_all_the_same_permutation():
    frame = permuted_blocks(["PV", "HA"], [1, 1], [4], 400, np.random.default_rng(5))
    patterns = frame.groupby("block")["arm"].agg(tuple)
    assert patterns.nunique() == 6


@pytest.mark.parametrize("sizes", [[5], [4, 3], []])
def test_block_size_not_multiple_of_ratio_rejected(sizes):
    with pytest.raises(ValueError):
        permuted_blocks(["PV", "HA"], [1, 1], sizes, 10, np.random.default_rng(1))


def test_allocation_list_uses_trial_defaults():
    trial = load_trial("NCT06984497")
    frame = allocation_list(trial)
    assert len(frame) >= trial.planned_n and set(frame["block_size"]) == {4}
    pd.testing.assert_frame_equal(frame, allocation_list(trial, seed=trial.randomization.seed))
    assert not frame.equals(allocation_list(trial, seed=1))


def test_allocation_list_sister_trial():
    trial = load_trial("NCT06242405")
    frame = allocation_list(trial, n=50, seed=9)
    assert len(frame) >= 50 and set(frame["block_size"]) <= {4, 6}
    assert set(frame["arm"]) == {"SINGLE", "DOUBLE"}


def test_allocation_list_one_list_per_stratum():
    trial = load_trial("NCT06984497")
    strat = dataclasses.replace(trial.randomization, strata=(Stratum("CP", ("B", "C")),))
    trial = type(trial)(**{**trial.__dict__, "randomization": strat})
    frame = allocation_list(trial, n=12, seed=3)
    assert list(frame.columns) == ["stratum", "seq", "block", "block_size", "arm"]
    assert frame["stratum"].unique().tolist() == ["CP=B", "CP=C"]
    for _, one in frame.groupby("stratum"):
        assert len(one) >= 12 and one["seq"].tolist() == list(range(1, len(one) + 1))


# --- the list drives the simulator ------------------------------------------------------------

@pytest.mark.parametrize("tid,seed", [("NCT06984497", None), ("NCT06984497", 5), ("NCT06242405", 2)])
def test_simulated_arms_follow_the_list_in_order(tid, seed):
    from helpers.data.simulation import simulate_export
    trial = load_trial(tid)
    rand = simulate_export(trial, seed=seed)["randomization"].sort_values("subject_id")
    alloc = allocation_list(trial).head(len(rand))
    assert rand["arm"].astype(str).tolist() == alloc["arm"].tolist()
    assert rand["block"].tolist() == alloc["block"].tolist()


def test_allocation_list_needs_a_seed():
    trial = load_trial("NCT06984497")
    unseeded = dataclasses.replace(trial, randomization=dataclasses.replace(trial.randomization, seed=None))
    with pytest.raises(ValueError, match="seed"):
        allocation_list(unseeded)


# --- the check ----------------------------------------------------------------------------------

from scipy import stats  # noqa: E402

from helpers.analysis import allocation as A  # noqa: E402
from helpers.analysis import balance as B  # noqa: E402
from helpers.data import randomization as R  # noqa: E402
from helpers.analysis.baseline import baseline_variables  # noqa: E402
from helpers.data.adam import build_adam  # noqa: E402
from helpers.data.loading import load_export, read_raw  # noqa: E402
from helpers.report import plots  # noqa: E402
from helpers.report import randomization as RR  # noqa: E402


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (16, 32), (13, 32), (32, 32), (45, 92), (7, 9)])
def test_clopper_pearson_matches_scipy_binomtest(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert A.clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-10)


def test_clopper_pearson_published_value():
    # 16/32: exact 95% CI 0.3189 to 0.6811 (e.g. Newcombe, Stat Med 1998, method 5)
    assert A.clopper_pearson(16, 32) == pytest.approx((0.3189, 0.6811), abs=5e-5)  # half a unit of the 4th decimal


def test_allocation_ratio_on_committed_export(export, trial):
    ratio = A.allocation_ratio(export["randomization"], trial).set_index("arm")
    counts = export["randomization"]["arm"].astype(str).value_counts()
    for arm in trial.arm_codes:
        assert ratio.at[arm, "n"] == counts[arm] and ratio.at[arm, "planned"] == 0.5
        assert ratio.at[arm, "ci_lower"] < ratio.at[arm, "proportion"] < ratio.at[arm, "ci_upper"]
    assert ratio["n"].sum() == len(export["randomization"])


def test_committed_export_is_clean(export, trial):
    alloc = R.allocation_list(trial)
    rand = export["randomization"]
    assert A.allocation_mismatches(A.realized_vs_list(rand, alloc)).empty
    blocks = A.block_completeness(rand, alloc, trial)
    assert (blocks["finding"] == "").all() and blocks["randomized"].sum() == len(rand)
    assert (A.chronology(rand, export["screening"], export["dosing"], trial)["Finding"] == "").all()


@pytest.fixture()
def corrupted(export_copy, trial):
    """The committed export with 01-005's arm flipped and 01-010 randomized 3 days after its first infusion."""
    rand = read_raw(export_copy / "randomization.csv")
    inf = read_raw(export_copy / "dosing.csv")
    i = rand.index[rand["subject_id"] == "01-005"][0]
    rand.at[i, "arm"] = next(a for a in trial.arm_codes if a != rand.at[i, "arm"])
    first = inf[(inf["subject_id"] == "01-010") & (inf["dose_no"] == "1")]["dose_date"].iloc[0]
    j = rand.index[rand["subject_id"] == "01-010"][0]
    rand.at[j, "rand_date"] = (pd.Timestamp(first) + pd.Timedelta(days=3)).strftime("%Y-%m-%d")
    rand.to_csv(export_copy / "randomization.csv", index=False)
    return load_export(export_copy, trial)


def test_corrupted_file_reported_by_participant(corrupted, trial):
    alloc = R.allocation_list(trial)
    rand = corrupted["randomization"]
    mism = A.allocation_mismatches(A.realized_vs_list(rand, alloc))
    assert mism["Subject"].tolist() == ["01-005"] and mism["Sequence"].tolist() == [5]
    assert mism["List arm"].iloc[0] == alloc.at[4, "arm"] != mism["Allocated arm"].iloc[0]
    timing = A.chronology(rand, corrupted["screening"], corrupted["dosing"], trial)
    bad = timing[timing["Finding"] != ""]
    assert bad["Subject"].tolist() == ["01-010"] and "after the first infusion" in bad["Finding"].iloc[0]
    blocks = A.block_completeness(rand, alloc, trial)
    assert blocks.loc[blocks["finding"] != "", "block"].tolist() == [2]
    received = A.received_vs_allocated(rand, corrupted["dosing"])
    assert received.loc[received["Finding"] != "", "Subject"].tolist() == ["01-005"]
    adsl = build_adam(corrupted, trial)["adsl"]
    res = A.randomization_results(A.realized_vs_list(rand, alloc), received, A.allocation_ratio(rand, trial), blocks,
                                  timing, B.baseline_balance(adsl, trial, baseline_variables(trial, adsl), n_perm=50))
    assert list(res.columns) == ["check", "item", "level", "statistic", "value"]
    assert {"01-005", "01-010"} <= set(res["item"])


def test_outside_accrual_window_and_before_screening(export, trial):
    rand = export["randomization"].copy()
    start, end = A.accrual_window(trial)
    rand.loc[0, "rand_date"] = end + pd.Timedelta(days=1)
    rand.loc[1, "rand_date"] = pd.Timestamp("2000-01-01")
    timing = A.chronology(rand, export["screening"], export["dosing"], trial).set_index("Subject")
    assert "accrual window" in timing.loc[rand.loc[0, "subject_id"], "Finding"]
    assert "before screening" in timing.loc[rand.loc[1, "subject_id"], "Finding"]


def test_block_completeness_tiny_case(trial):
    alloc = pd.DataFrame({"seq": range(1, 9), "block": [1] * 4 + [2] * 4, "block_size": 4,
                          "arm": ["PV", "HA", "HA", "PV", "HA", "PV", "PV", "HA"]})
    rand = pd.DataFrame({"block": [1, 1, 1, 1, 2, 2], "arm": ["PV", "HA", "HA", "HA", "HA", "PV"]})
    blocks = A.block_completeness(rand, alloc, trial).set_index("block")
    assert blocks.at[1, "complete"] and not blocks.at[1, "balanced"]
    assert blocks.at[1, "finding"] == "complete block not in the planned ratio"
    assert not blocks.at[2, "complete"] and blocks.at[2, "finding"] == ""


def test_smd_hand_computed():
    x = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
    g = np.array([0, 0, 0, 1, 1, 1])
    # means 2 and 6, variances 1 and 4: d = 4 / sqrt(2.5)
    assert B.smd(x, g) == pytest.approx(4 / np.sqrt(2.5))
    b = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=float)
    gb = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # p0 = 0.25, p1 = 0.75: d = 0.5 / sqrt((0.1875 + 0.1875) / 2)
    assert B.smd(b, gb, binary=True) == pytest.approx(0.5 / np.sqrt(0.1875))
    # missing left out: control {1, 3} (mean 2, variance 2), treated {5, 7} (mean 6, variance 2)
    assert B.smd(np.array([1.0, np.nan, 3.0, 5.0, 7.0]), np.array([0, 0, 0, 1, 1])) == pytest.approx(4 / np.sqrt(2))


def test_smd_matches_tableone_for_continuous(adam, trial):
    from tableone import TableOne
    adsl = adam["adsl"]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t1 = TableOne(adsl, columns=["AGE", "MELD", "TBILBL"], groupby="ARMCD", smd=True, pval=False)
    treated = (adsl["ARMCD"] == "HA").astype(int).to_numpy()
    smd_col = [c for c in t1.smd_table.columns if "HA" in c and "PV" in c][0]
    for col in ("AGE", "MELD", "TBILBL"):
        mine = abs(float(B.smd(adsl[col].astype(float).to_numpy(), treated)))
        assert mine == pytest.approx(abs(float(t1.smd_table.loc[col, smd_col])), abs=1e-3)


def test_balance_chance_range_seeded_and_sensible(adam, trial):
    adsl = adam["adsl"]
    variables = baseline_variables(trial, adsl)
    a = B.baseline_balance(adsl, trial, variables, n_perm=400, seed=3)
    b = B.baseline_balance(adsl, trial, variables, n_perm=400, seed=3)
    pd.testing.assert_frame_equal(a, b)
    cont = a[a["level"] == ""]
    # for a continuous covariate and n = 16 per arm, |SMD| by chance alone rarely exceeds ~0.7 (2 x 1.96 / sqrt(32) = 0.69)
    assert cont["chance_p95"].between(0.55, 0.9).all()
    assert (a["abs_smd"] >= 0).all()


def test_balance_figure_holds_the_numbers(adam, trial):
    adsl = adam["adsl"]
    bal = B.baseline_balance(adsl, trial, baseline_variables(trial, adsl), n_perm=100)
    fig = plots.plot_balance(bal, trial)
    ax = fig.axes[0]
    dots = ax.lines[0].get_xdata()
    assert np.allclose(dots, bal["abs_smd"]) and np.allclose([p.get_width() for p in ax.patches], bal["chance_p95"])


def test_accrual_window_from_the_trial_file(trial):
    start, end = A.accrual_window(trial)
    assert start == pd.Timestamp(trial.randomization.accrual_start)
    assert end == start + pd.DateOffset(months=trial.accrual_months)


# --- a supplied allocation list, the source sentence, a trial without a dosing file -------------

import hashlib  # noqa: E402
from dataclasses import replace  # noqa: E402


def _with_list(tmp_path, text, name="alloc.csv"):
    trial = load_trial("NCT06984497")
    (tmp_path / name).write_text(text)
    return replace(trial, source=tmp_path / "trial.yaml", randomization=replace(trial.randomization, list_file=name))


def test_supplied_list_is_read_and_named_with_its_hash(tmp_path):
    text = "seq,block,block_size,arm\n1,1,2,HA\n2,1,2,PV\n3,2,2,PV\n4,2,2,HA\n"
    trial = _with_list(tmp_path, text)
    frame = R.allocation_list(trial)
    assert frame["arm"].tolist() == ["HA", "PV", "PV", "HA"] and frame["seq"].tolist() == [1, 2, 3, 4]
    assert frame["block_size"].dtype == "int64"
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    assert RR.allocation_source(trial) == f"read from the supplied list alloc.csv (SHA-256 {digest})"
    assert len(R.allocation_list(trial, seed=1)) >= trial.planned_n  # an explicit seed regenerates


@pytest.mark.parametrize("text,match", [("seq,block,arm\n1,1,HA\n", "block_size"),
                                        ("seq,block,block_size,arm\n1,1,2,XX\n", "'XX'"),
                                        ("seq,block,block_size,arm\n1,,2,HA\n", "block")])
def test_bad_supplied_list_rejected_naming_the_file(tmp_path, text, match):
    trial = _with_list(tmp_path, text, "given.csv")
    with pytest.raises(ValueError, match="given.csv") as err:
        R.allocation_list(trial)
    assert match in str(err.value)


def test_missing_supplied_list_rejected(tmp_path):
    trial = load_trial("NCT06984497")
    trial = replace(trial, source=tmp_path / "t.yaml", randomization=replace(trial.randomization, list_file="none.csv"))
    with pytest.raises(ValueError, match="none.csv"):
        R.allocation_list(trial)


def test_allocation_source_regenerated():
    assert RR.allocation_source(load_trial("NCT06984497")) == \
        "regenerated from the trial file (permuted blocks of 4, seed 20250612)"
    assert RR.allocation_source(load_trial("DEMO-ORAL")) == \
        "regenerated from the trial file (permuted blocks of 2 or 4, seed 20260105)"


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (16, 32), (32, 32), (45, 92), (0, 1), (1, 1)])
def test_clopper_pearson_same_as_beta_quantiles(k, n):
    lo = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
    assert A.clopper_pearson(k, n) == pytest.approx((lo, hi), abs=1e-12)
    assert A.clopper_pearson(k, n, level=0.9)[0] >= lo


def _tiny_rand():
    return pd.DataFrame({"subject_id": ["01-002", "01-001"], "screening_id": ["S2", "S1"], "arm": ["DRUG", "PBO"],
                         "rand_date": pd.to_datetime(["2026-01-10", "2026-01-06"])})


def _no_doses():
    return pd.DataFrame({"subject_id": pd.Series(dtype="string"), "dose_no": pd.Series(dtype="Int64"),
                         "dose_date": pd.Series(dtype="datetime64[ns]"), "arm_received": pd.Series(dtype="string")})


def test_no_dosing_file_reports_no_deviation():
    demo = load_trial("DEMO-ORAL")
    got = A.received_vs_allocated(_tiny_rand(), _no_doses(), demo)
    assert got["Subject"].tolist() == ["01-001", "01-002"] and (got["Finding"] == "").all()
    assert (got["Arm received"] == "not recorded (no dosing file)").all()
    first_dose = replace(demo, treatment=replace(demo.treatment, start="first_dose"))
    assert A.received_vs_allocated(_tiny_rand(), _no_doses(), first_dose)["Finding"].tolist() == ["no dose"] * 2


def test_chronology_without_dose_records():
    demo = load_trial("DEMO-ORAL")
    screening = pd.DataFrame({"screening_id": ["S1", "S2"], "screening_date": pd.to_datetime(["2026-01-05", "2026-01-12"])})
    timing = A.chronology(_tiny_rand(), screening, _no_doses(), demo)
    assert list(timing.columns) == ["Subject", "Screening", "Randomization", "First dose", "Finding"]
    assert timing["First dose"].isna().all()
    assert timing["Finding"].tolist() == ["", "randomized before screening"]


# --- the checks bundled for the chapter, and its display tables -----------------------------------

def test_check_allocation_bundles_every_check(export, trial):
    alloc = R.allocation_list(trial)
    rand = export["randomization"]
    checks = A.check_allocation(export, trial, alloc)
    pd.testing.assert_frame_equal(checks.realized, A.realized_vs_list(rand, alloc))
    pd.testing.assert_frame_equal(checks.blocks, A.block_completeness(rand, alloc, trial))
    empty = pd.DataFrame(columns=["comparison", "variable", "level", "abs_smd", "chance_p95"])
    pd.testing.assert_frame_equal(checks.results(empty), A.randomization_results(
        checks.realized, checks.received, checks.ratio, checks.blocks, checks.timing, empty))


def test_balance_defaults_to_table_one_rows_and_the_trial_seed(adam, trial):
    adsl = adam["adsl"]
    pd.testing.assert_frame_equal(
        B.baseline_balance(adsl, trial, n_perm=50),
        B.baseline_balance(adsl, trial, baseline_variables(trial, adsl), n_perm=50, seed=trial.randomization.seed))
    assert set(B.baseline_balance(adsl, trial, n_perm=10)["comparison"]) == \
        {f"{a.label} vs {trial.control.label}" for a in trial.experimental_arms}


def test_display_tables_and_chapter_numbers(corrupted, trial):
    alloc = R.allocation_list(trial)
    checks = A.check_allocation(corrupted, trial, alloc)
    assert RR.mismatch_table(checks)["Subject"].tolist() == ["01-005"]
    assert RR.deviation_table(checks)["Subject"].tolist() == ["01-005"]
    assert RR.breach_table(checks)["Subject"].tolist() == ["01-010"]
    ratio = RR.ratio_table(checks.ratio)
    assert list(ratio.columns) == ["Arm", "Randomized (n)", "Proportion", "95% CI", "Planned"]
    assert ratio["Arm"].tolist() == [a.label for a in trial.arms]
    blocks = RR.block_table(checks.blocks, trial)
    assert [f"{a.label} (n)" for a in trial.arms] == [c for c in blocks.columns if c.endswith("(n)")]
    assert set(blocks["Complete"]) <= {"yes", "no"} and "balanced" not in blocks
    bal = pd.DataFrame({"comparison": ["B vs A"], "variable": ["Age"], "level": [""], "abs_smd": [0.123],
                        "chance_p95": [0.456]})
    assert RR.balance_table(bal).values.tolist() == [["B vs A", "Age", "", 0.12, 0.46]]
    flow = pd.DataFrame({"box": ["assessed", "excluded", "excluded:criteria", "excluded:declined", "randomized"],
                         "n": [40, 8, 6, 2, 32]})
    numbers = RR.chapter_numbers(trial, flow, alloc, checks, bal)
    assert (numbers["n_screened"], numbers["n_randomized"], numbers["n_mismatch"], numbers["n_deviation"],
            numbers["n_chronology"], numbers["max_smd"]) == (40, 32, 1, 1, 1, "0.12")
    assert numbers["allocation_source"] == RR.allocation_source(trial)
