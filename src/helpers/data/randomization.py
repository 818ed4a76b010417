"""The allocation list: permuted blocks generated from the trial file (seeded), or a supplied list file
read and checked against the trial. Part of the data layer: the simulator draws arms from it.

Checking the realized allocation against the list is ``helpers.analysis.allocation``.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.trial import Trial

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


def _stratum_labels(strata) -> list[str]:
    """Stratum names: the codes as given when no factor lists levels, else every combination of the levels."""
    if not any(s.levels for s in strata):
        return [s.code for s in strata]
    factors = [[f"{f.code}={lvl}" for lvl in f.levels] for f in strata if f.levels]
    return ["/".join(combo) for combo in itertools.product(*factors)]


def list_file(trial: Trial) -> Path | None:
    """The supplied allocation list (``randomization.list_file``, relative to the trial file), if any."""
    name = trial.randomization.list_file
    if not name:
        return None
    base = trial.source.parent if trial.source is not None else Path.cwd()
    return base / str(name)


def read_allocation_list(path: Path, trial: Trial) -> pd.DataFrame:
    """A supplied allocation list (CSV: seq, block, block_size, arm; optional stratum), checked against the trial.

    Raises ValueError naming the file when it is missing, lacks a column, holds a non-integer
    sequence, block or block size, or an arm the trial file does not define.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ValueError(f"{path}: cannot read the allocation list ({e})") from None
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in _COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"{path}: allocation list lacks column(s) {', '.join(missing)} (needs {', '.join(_COLUMNS)})")
    keep = (["stratum"] if "stratum" in frame else []) + _COLUMNS
    frame = frame[keep].apply(lambda c: c.str.strip())
    for col in ("seq", "block", "block_size"):
        bad = ~frame[col].str.fullmatch(r"\d+")
        if bad.any():
            row = int(bad.idxmax())
            raise ValueError(f"{path}: {col} must be a whole number (line {row + 2}: {frame.at[row, col]!r})")
        frame[col] = frame[col].astype("int64")
    unknown = sorted(set(frame["arm"]) - set(trial.arm_codes))
    if unknown:
        raise ValueError(f"{path}: arm(s) {', '.join(map(repr, unknown))} not in the trial file {trial.arm_codes}")
    return frame


NO_LIST = ("the trial file states neither a randomization seed nor an allocation list file, so there is no "
           "allocation list to check the randomization log against")


def has_allocation_list(trial: Trial) -> bool:
    """Whether the trial file gives an allocation list: a list file, or a seed to regenerate it from."""
    source = trial.masked_from or trial
    return list_file(source) is not None or source.randomization.seed is not None


def stated_allocation_list(trial: Trial) -> pd.DataFrame | None:
    """The trial's allocation list (``allocation_list``), or None when the trial file gives none (``NO_LIST``)."""
    return allocation_list(trial) if has_allocation_list(trial) else None


def allocation_list(trial: Trial, n: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """The trial's allocation list: the supplied list file, else permuted blocks regenerated from the seed.

    A list file (``randomization.list_file``) is used as supplied (every row; ``n`` is ignored)
    unless a ``seed`` is passed. Otherwise ``n`` defaults to the planned sample size and ``seed``
    to the trial file's ``randomization.seed``, so the list is reproducible from the trial file
    alone, independently of any data or simulation. With strata in the trial file (a list of
    names, or of ``{code, levels}`` factors to cross), one list covering ``n`` is made per stratum,
    marked in a leading ``stratum`` column.
    """
    if trial.is_blinded:
        real = allocation_list(trial.masked_from, n, seed)
        return real.assign(arm=real["arm"].map(trial.masking_codes))
    path = list_file(trial)
    if path is not None and seed is None:
        return read_allocation_list(path, trial)
    n = trial.planned_n if n is None else int(n)
    seed = trial.randomization.seed if seed is None else seed
    if seed is None:
        raise ValueError(f"{trial.id}: no randomization.seed in the trial file; the allocation list must be seeded")
    rng = np.random.default_rng(seed)
    arms = [a.code for a in trial.arms]
    ratios = [a.ratio for a in trial.arms]
    sizes = trial.block_sizes
    strata = trial.randomization.strata
    if not strata:
        return permuted_blocks(arms, ratios, sizes, n, rng)
    lists = []
    for label in _stratum_labels(strata):
        one = permuted_blocks(arms, ratios, sizes, n, rng)
        one.insert(0, "stratum", label)
        lists.append(one)
    return pd.concat(lists, ignore_index=True)

