"""Permuted-block allocation lists."""
import numpy as np
import pandas as pd
import pytest

from helpers.randomization import allocation_list, permuted_blocks
from helpers.trial import load_trial


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
    pd.testing.assert_frame_equal(frame, allocation_list(trial, seed=trial.simulation["seed"]))
    assert not frame.equals(allocation_list(trial, seed=1))


def test_allocation_list_sister_trial():
    trial = load_trial("NCT06242405")
    frame = allocation_list(trial, n=50, seed=9)
    assert len(frame) >= 50 and set(frame["block_size"]) <= {4, 6}
    assert set(frame["arm"]) == {"SINGLE", "DOUBLE"}


def test_allocation_list_one_list_per_stratum():
    trial = load_trial("NCT06984497")
    strat = dict(trial.randomization, strata=[{"code": "CP", "levels": ["B", "C"]}])
    trial = type(trial)(**{**trial.__dict__, "randomization": strat})
    frame = allocation_list(trial, n=12, seed=3)
    assert list(frame.columns) == ["stratum", "seq", "block", "block_size", "arm"]
    assert frame["stratum"].unique().tolist() == ["CP=B", "CP=C"]
    for _, one in frame.groupby("stratum"):
        assert len(one) >= 12 and one["seq"].tolist() == list(range(1, len(one) + 1))
