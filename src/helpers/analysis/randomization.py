"""Permuted-block allocation lists, as a trial statistician prepares them before the first patient."""
from __future__ import annotations

import hashlib
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


def _stratum_labels(strata: list) -> list[str]:
    """Stratum names: plain strings as given, or every combination of ``{code, levels}`` factors."""
    if all(isinstance(s, str) for s in strata):
        return [str(s) for s in strata]
    factors = [[f"{f['code']}={lvl}" for lvl in f["levels"]] for f in strata]
    return ["/".join(combo) for combo in itertools.product(*factors)]


def list_file(trial: Trial) -> Path | None:
    """The supplied allocation list (``randomization.list_file``, relative to the trial file), if any."""
    name = trial.randomization.get("list_file")
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


def allocation_list(trial: Trial, n: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """The trial's allocation list: the supplied list file, else permuted blocks regenerated from the seed.

    A list file (``randomization.list_file``) is used as supplied (every row; ``n`` is ignored)
    unless a ``seed`` is passed. Otherwise ``n`` defaults to the planned sample size and ``seed``
    to the trial file's ``randomization.seed``, so the list is reproducible from the trial file
    alone, independently of any data or simulation. With strata in the trial file (a list of
    names, or of ``{code, levels}`` factors to cross), one list covering ``n`` is made per stratum,
    marked in a leading ``stratum`` column.
    """
    path = list_file(trial)
    if path is not None and seed is None:
        return read_allocation_list(path, trial)
    n = trial.planned_n if n is None else int(n)
    seed = trial.randomization.get("seed") if seed is None else seed
    if seed is None:
        raise ValueError(f"{trial.id}: no randomization.seed in the trial file; the allocation list must be seeded")
    rng = np.random.default_rng(seed)
    arms = [a.code for a in trial.arms]
    ratios = [a.ratio for a in trial.arms]
    sizes = _block_sizes(trial)
    strata = trial.randomization.get("strata") or []
    if not strata:
        return permuted_blocks(arms, ratios, sizes, n, rng)
    lists = []
    for label in _stratum_labels(strata):
        one = permuted_blocks(arms, ratios, sizes, n, rng)
        one.insert(0, "stratum", label)
        lists.append(one)
    return pd.concat(lists, ignore_index=True)


def _block_sizes(trial: Trial) -> list[int]:
    return [int(b) for b in trial.randomization.get("block_sizes") or [sum(a.ratio for a in trial.arms) * 2]]


def allocation_source(trial: Trial) -> str:
    """Where the allocation list comes from, as a phrase for the text ("The allocation list was ...")."""
    path = list_file(trial)
    if path is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else "file not found"
        return f"read from the supplied list {path.name} (SHA-256 {digest})"
    sizes = _block_sizes(trial)
    blocks = str(sizes[0]) if len(sizes) == 1 else ", ".join(map(str, sizes[:-1])) + f" or {sizes[-1]}"
    strata = ", one list per stratum" if trial.randomization.get("strata") else ""
    return (f"regenerated from the trial file (permuted blocks of {blocks}, "
            f"seed {trial.randomization.get('seed')}{strata})")


# --- checking the realized allocation ---------------------------------------------------------

def accrual_window(trial: Trial) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day randomization was allowed: ``randomization.accrual_start`` (else the
    simulation's) and ``accrual_months`` later."""
    start = trial.randomization.get("accrual_start", trial.simulation.get("accrual_start"))
    if start is None:
        raise ValueError(f"{trial.id}: no randomization.accrual_start in the trial file")
    start = pd.Timestamp(start)
    return start, start + pd.DateOffset(months=trial.accrual_months)


def realized_vs_list(randomization: pd.DataFrame, alloc: pd.DataFrame) -> pd.DataFrame:
    """Each participant next to the list row of the same sequence number.

    The sequence is the order of study numbers (assigned in order of randomization, so a wrong
    date cannot reorder it). Columns: subject_id, sequence, rand_date, block, arm, list_block,
    list_arm, arm_matches, block_matches.
    """
    if "stratum" in alloc:
        raise NotImplementedError("checking a stratified list needs each participant's stratum in the export")
    rand = randomization.sort_values("subject_id", kind="stable").reset_index(drop=True)
    out = pd.DataFrame({"subject_id": rand["subject_id"], "sequence": np.arange(1, len(rand) + 1),
                        "rand_date": rand["rand_date"], "block": rand["block"].astype("Int64"),
                        "arm": rand["arm"].astype(str)})
    ref = alloc.set_index("seq").reindex(out["sequence"])
    out["list_block"] = ref["block"].astype("Int64").to_numpy()
    out["list_arm"] = ref["arm"].to_numpy()
    out["arm_matches"] = out["arm"].eq(out["list_arm"]).to_numpy(dtype=bool)
    out["block_matches"] = out["block"].eq(out["list_block"]).fillna(False).to_numpy(dtype=bool)
    return out


def allocation_mismatches(check: pd.DataFrame) -> pd.DataFrame:
    """Participants whose allocated arm (or block) differs from the list: subject, sequence, list arm, allocated arm."""
    bad = check[~check["arm_matches"] | ~check["block_matches"]]
    return pd.DataFrame({"Subject": bad["subject_id"], "Sequence": bad["sequence"], "List arm": bad["list_arm"],
                         "Allocated arm": bad["arm"], "List block": bad["list_block"],
                         "Block": bad["block"]}).reset_index(drop=True)


def received_vs_allocated(randomization: pd.DataFrame, infusion: pd.DataFrame,
                          trial: Trial | None = None) -> pd.DataFrame:
    """Per participant: arm allocated, arm of the first dose received, and the deviation if any.

    Without dose records in a trial whose day 1 is the randomization date (no dosing file), what
    was received is not recorded: "Arm received" says so and no deviation is reported.
    """
    noun = trial.treatment.noun if trial else "infusion"
    rand = randomization.sort_values("subject_id")
    allocated = rand["arm"].astype(str).to_numpy()
    if trial is not None and trial.treatment.start == "randomization" and infusion.empty:
        return pd.DataFrame({"Subject": rand["subject_id"].to_numpy(), "Allocated arm": allocated,
                             "Arm received": "not recorded (no dosing file)", "Finding": ""})
    first = infusion.sort_values(["subject_id", "infusion_no"]).drop_duplicates("subject_id").set_index("subject_id")
    got = rand["subject_id"].map(first["arm_received"].astype(str)).astype("object")
    finding = np.select([got.isna(), got.ne(allocated)], [f"no {noun}", "received another arm"], "")
    return pd.DataFrame({"Subject": rand["subject_id"].to_numpy(), "Allocated arm": allocated,
                         "Arm received": got.to_numpy(), "Finding": finding})


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for k/n (Clopper & Pearson, Biometrika 1934), via statsmodels."""
    from statsmodels.stats.proportion import proportion_confint

    lower, upper = proportion_confint(k, n, alpha=1 - level, method="beta")
    return float(lower), float(upper)


def allocation_ratio(randomization: pd.DataFrame, trial: Trial, level: float = 0.95) -> pd.DataFrame:
    """Per arm: n randomized, observed and planned proportion, exact (Clopper-Pearson) CI of the proportion."""
    n = len(randomization)
    counts = randomization["arm"].astype(str).value_counts()
    total_ratio = sum(a.ratio for a in trial.arms)
    rows = []
    for a in trial.arms:
        k = int(counts.get(a.code, 0))
        lo, hi = clopper_pearson(k, n, level) if n else (np.nan, np.nan)
        rows.append({"arm": a.code, "label": a.label, "n": k, "total": n, "proportion": k / n if n else np.nan,
                     "planned": a.ratio / total_ratio, "ci_lower": lo, "ci_upper": hi})
    return pd.DataFrame(rows)


def block_completeness(randomization: pd.DataFrame, alloc: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Per block used: planned size (from the list), participants randomized, per-arm counts, complete, balanced.

    Only the last block may be incomplete; a complete block must hold the arms in the planned ratio.
    """
    size = alloc.groupby("block")["block_size"].first()
    counts = pd.crosstab(randomization["block"].astype("Int64"), randomization["arm"].astype(str))
    counts = counts.reindex(columns=trial.arm_codes, fill_value=0)
    total_ratio = sum(a.ratio for a in trial.arms)
    out = counts.rename_axis(None, axis=1).reset_index().rename(columns={"index": "block"})
    out.insert(1, "block_size", out["block"].map(size).astype("Int64"))
    out.insert(2, "randomized", counts.sum(axis=1).to_numpy())
    out["complete"] = out["randomized"].eq(out["block_size"]).fillna(False).to_numpy(dtype=bool)
    planned = np.array([[a.ratio for a in trial.arms]]) * (out["block_size"].fillna(0).to_numpy(dtype=int)[:, None] // total_ratio)
    out["balanced"] = (counts.to_numpy() == planned).all(axis=1)
    last = out["block"].max()
    out["finding"] = np.select(
        [out["block_size"].isna(), out["randomized"] > out["block_size"].fillna(0),
         out["complete"] & ~out["balanced"], ~out["complete"] & (out["block"] != last)],
        ["block not on the list", "more participants than the block size", "complete block not in the planned ratio",
         "incomplete block before the last"], "")
    return out


def chronology(randomization: pd.DataFrame, screening: pd.DataFrame, infusion: pd.DataFrame,
               trial: Trial) -> pd.DataFrame:
    """Per participant: screening, randomization and first dose dates, and every order or window breach.

    Rules: randomized on or after screening, on or before the first dose (when dose records
    exist), inside the accrual window (``accrual_window``). ``Finding`` lists the breaches ("" when
    none). The dose column is named by the trial's treatment noun ("First infusion").
    """
    start, end = accrual_window(trial)
    noun = trial.treatment.noun
    scr = screening.set_index("screening_id")["screening_date"]
    first = infusion.groupby("subject_id")["infusion_date"].min()
    rand = randomization.sort_values("subject_id")
    dose = f"First {noun}"
    out = pd.DataFrame({"Subject": rand["subject_id"].to_numpy(),
                        "Screening": pd.to_datetime(scr.reindex(rand["screening_id"].to_numpy())).to_numpy(),
                        "Randomization": pd.to_datetime(rand["rand_date"]).to_numpy(),
                        dose: pd.to_datetime(first.reindex(rand["subject_id"].to_numpy())).to_numpy()})
    rules = {
        "randomized before screening": out["Randomization"] < out["Screening"],
        f"randomized after the first {noun}": out["Randomization"] > out[dose],
        f"randomized outside the accrual window {start.date()} to {end.date()}": ~out["Randomization"].between(start, end),
    }
    out["Finding"] = ["; ".join(k for k, v in rules.items() if v.iloc[i]) for i in range(len(out))]
    return out


# --- baseline balance -------------------------------------------------------------------------

def _group_moments(values: np.ndarray, groups: np.ndarray, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``values`` within each row of the 0/1 matrix ``groups`` (missing values left out).

    Binary variables use p(1 - p); continuous ones the sample variance (n - 1).
    """
    ok = ~np.isnan(values)
    x = np.where(ok, values, 0.0)
    g = groups * ok
    n = g.sum(axis=-1)
    mean = (g * x).sum(axis=-1) / n
    if binary:
        return mean, mean * (1 - mean)
    ss = (g * (x - mean[..., None]) ** 2).sum(axis=-1)
    return mean, ss / (n - 1)


def smd(values: np.ndarray, treated: np.ndarray, binary: bool = False) -> np.ndarray:
    """Standardized mean difference treated - control (Austin, Stat Med 2009;28:3083-3107).

    Continuous: (mean1 - mean0) / sqrt((s1^2 + s0^2) / 2); binary: (p1 - p0) / sqrt((p1(1-p1) +
    p0(1-p0)) / 2). ``treated`` is 0/1 per participant, or a matrix of such rows (one SMD per row).
    Zero difference with zero spread gives 0.
    """
    values = np.asarray(values, dtype=float)
    treated = np.asarray(treated, dtype=float)
    m1, v1 = _group_moments(values, treated, binary)
    m0, v0 = _group_moments(values, 1 - treated, binary)
    diff, sd = m1 - m0, np.sqrt((v1 + v0) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, diff / sd, np.where(diff == 0, 0.0, np.inf))


def balance_rows(adsl: pd.DataFrame, variables: list[dict]) -> list[tuple[str, str, np.ndarray, bool]]:
    """(variable label, level, values, binary) per row of the balance table: one per continuous
    variable, one per level of a categorical one (an indicator, missing kept missing)."""
    rows = []
    for v in variables:
        col = adsl[v["column"]]
        if v["type"] == "continuous":
            rows.append((v["label"], "", col.astype("Float64").to_numpy(dtype=float, na_value=np.nan), False))
        else:
            miss = col.isna().to_numpy()
            for level in v["levels"]:
                ind = np.where(miss, np.nan, col.astype(str).eq(str(level)).to_numpy(dtype=float))
                rows.append((v["label"], str(level), ind, True))
    return rows


def baseline_balance(adsl: pd.DataFrame, trial: Trial, variables: list[dict], n_perm: int = 2000,
                     seed: int = 1) -> pd.DataFrame:
    """Absolute SMD of each baseline row, each non-control arm vs control, with the range chance gives.

    The reference is the re-randomization distribution: the observed participants' arm labels are
    permuted ``n_perm`` times (arm sizes kept, seeded) and ``chance_p95`` is the 95th percentile of
    |SMD| under those permutations, i.e. what randomization alone produces at this N per arm.
    Descriptive only: no p-values (CONSORT 2010, item 15).
    """
    rng = np.random.default_rng(seed)
    rows = balance_rows(adsl, variables)
    arms = adsl["ARMCD"].astype(str).to_numpy()
    out = []
    for arm in trial.arms:
        if arm.code == trial.control_arm:
            continue
        keep = np.isin(arms, [arm.code, trial.control_arm])
        treated = (arms[keep] == arm.code).astype(float)
        perms = np.array([rng.permutation(treated) for _ in range(n_perm)])
        for label, level, values, binary in rows:
            observed = abs(float(smd(values[keep], treated, binary)))
            null = np.abs(smd(values[keep], perms, binary))
            out.append({"comparison": f"{arm.label} vs {trial.arm_labels[trial.control_arm]}", "variable": label,
                        "level": level, "abs_smd": observed, "chance_p95": float(np.nanpercentile(null, 95))})
    return pd.DataFrame(out)


def plot_balance(balance: pd.DataFrame, trial: Trial):
    """Dot plot of |SMD| per baseline row (dots) against the 95th percentile chance gives (grey bars)."""
    import matplotlib.pyplot as plt

    from helpers.report.plots import arm_palette, set_style

    set_style()
    labels = [f"{v}: {lv}" if lv else v for v, lv in zip(balance["variable"], balance["level"])]
    fig, ax = plt.subplots(figsize=(7, 0.26 * len(balance) + 1.4))
    y = np.arange(len(balance))[::-1]
    colour = arm_palette(trial)[next(a.label for a in trial.arms if a.code != trial.control_arm)]
    ax.barh(y, balance["chance_p95"], color="#d9d9d9", height=0.6, label="95th percentile under re-randomization")
    ax.plot(balance["abs_smd"], y, "o", color=colour, markersize=5, label="Observed |SMD|")
    ax.set_yticks(y, labels)
    ax.set_xlabel("Absolute standardized mean difference")
    ax.set_ylim(-0.7, len(balance) - 0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    fig.tight_layout()
    plt.close(fig)
    return fig


def randomization_results(check: pd.DataFrame, received: pd.DataFrame, ratio: pd.DataFrame, blocks: pd.DataFrame,
                          timing: pd.DataFrame, balance: pd.DataFrame) -> pd.DataFrame:
    """Every result of the randomization check as one tidy table: check, item, level, statistic, value.

    Mismatches, deviations and chronology breaches appear one row per participant (item = subject).
    """
    rows = [("list", "all", "", "participants checked", len(check)),
            ("list", "all", "", "arm mismatches", int((~check["arm_matches"]).sum())),
            ("list", "all", "", "block mismatches", int((~check["block_matches"]).sum()))]
    for r in check[~check["arm_matches"] | ~check["block_matches"]].itertuples(index=False):
        rows += [("list", r.subject_id, "", "sequence", r.sequence), ("list", r.subject_id, "", "list arm", r.list_arm),
                 ("list", r.subject_id, "", "allocated arm", r.arm)]
    dev = received[received["Finding"] != ""]
    rows.append(("received", "all", "", "deviations", len(dev)))
    rows += [("received", r.Subject, "", r.Finding, r._2) for r in dev.itertuples(index=False)]
    for r in ratio.itertuples(index=False):
        rows += [("ratio", r.arm, "", k, getattr(r, k)) for k in ("n", "proportion", "planned", "ci_lower", "ci_upper")]
    rows += [("blocks", "all", "", "blocks used", len(blocks)),
             ("blocks", "all", "", "complete", int(blocks["complete"].sum())),
             ("blocks", "all", "", "problems", int((blocks["finding"] != "").sum()))]
    rows += [("blocks", str(r.block), "", r.finding, r.randomized) for r in blocks[blocks["finding"] != ""].itertuples()]
    bad = timing[timing["Finding"] != ""]
    rows.append(("chronology", "all", "", "participants with a breach", len(bad)))
    rows += [("chronology", r.Subject, "", "finding", r.Finding) for r in bad.itertuples(index=False)]
    for r in balance.itertuples(index=False):
        rows += [("balance", r.variable, r.level, f"|SMD| {r.comparison}", r.abs_smd),
                 ("balance", r.variable, r.level, f"chance 95th percentile {r.comparison}", r.chance_p95)]
    return pd.DataFrame(rows, columns=["check", "item", "level", "statistic", "value"])
