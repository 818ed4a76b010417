"""Permuted-block allocation lists, as a trial statistician prepares them before the first patient."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .trial import Trial

_COLUMNS = ["seq", "block", "block_size", "arm"]


def permuted_blocks(arms: list[str], ratios: list[int], block_sizes: list[int], n: int,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Allocation list of whole permuted blocks covering at least ``n`` allocations.

    Each block's size is drawn at random from ``block_sizes`` (no draw when there is only one
    size) and the block is a random permutation holding the arms in the ratio ``ratios``. Blocks
    are kept whole, as on a real list, which is usually longer than needed: callers take the
    first ``n`` rows. Columns: seq (1..), block (1..), block_size, arm.
    """
    arms, ratios, block_sizes = list(arms), [int(r) for r in ratios], [int(b) for b in block_sizes]
    if not arms or len(arms) != len(ratios):
        raise ValueError("arms and ratios must be non-empty and of the same length")
    if any(r < 1 for r in ratios):
        raise ValueError(f"ratios must be positive integers, got {ratios}")
    unit = sum(ratios)
    if not block_sizes or any(b < unit or b % unit for b in block_sizes):
        raise ValueError(f"every block size must be a positive multiple of the ratio total {unit}, got {block_sizes}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rows: list[tuple[int, int, str]] = []
    block = 0
    while len(rows) < n:
        block += 1
        size = block_sizes[0] if len(block_sizes) == 1 else block_sizes[int(rng.integers(len(block_sizes)))]
        content = np.repeat(np.array(arms, dtype=object), [r * size // unit for r in ratios])
        rows.extend((block, size, str(a)) for a in rng.permutation(content))
    frame = pd.DataFrame(rows, columns=_COLUMNS[1:])
    frame.insert(0, "seq", np.arange(1, len(frame) + 1))
    return frame.astype({"seq": "int64", "block": "int64", "block_size": "int64"})


def _stratum_labels(strata: list) -> list[str]:
    """Stratum names: plain strings as given, or every combination of ``{code, levels}`` factors."""
    if all(isinstance(s, str) for s in strata):
        return [str(s) for s in strata]
    factors = [[f"{f['code']}={lvl}" for lvl in f["levels"]] for f in strata]
    return ["/".join(combo) for combo in itertools.product(*factors)]


def allocation_list(trial: Trial, n: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """The trial's allocation list: permuted blocks with the trial's block sizes and arm ratios.

    ``n`` defaults to the planned sample size and ``seed`` to the trial's simulation seed. With
    strata in the trial file (a list of names, or of ``{code, levels}`` factors to cross), one list
    covering ``n`` is made per stratum, marked in a leading ``stratum`` column.
    """
    n = trial.planned_n if n is None else int(n)
    seed = trial.simulation.get("seed") if seed is None else seed
    rng = np.random.default_rng(seed)
    arms = [a.code for a in trial.arms]
    ratios = [a.ratio for a in trial.arms]
    sizes = trial.randomization.get("block_sizes") or [sum(ratios) * 2]
    strata = trial.randomization.get("strata") or []
    if not strata:
        return permuted_blocks(arms, ratios, sizes, n, rng)
    lists = []
    for label in _stratum_labels(strata):
        one = permuted_blocks(arms, ratios, sizes, n, rng)
        one.insert(0, "stratum", label)
        lists.append(one)
    return pd.concat(lists, ignore_index=True)
