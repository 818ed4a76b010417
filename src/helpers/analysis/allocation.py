"""Whether the realized allocation followed the list: per participant (arm and block against the list,
arm received, dates in order), per arm (ratio with an exact CI) and per block, and all of it as one tidy
result table (``randomization_results``, saved as randomization.csv).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from helpers.data.loading import Export, first_doses
from helpers.data.randomization import NO_LIST
from helpers.trial import Trial


def accrual_window(trial: Trial) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day randomization was allowed: ``randomization.accrual_start`` (else the
    simulation's) and ``accrual_months`` later."""
    start = trial.accrual_start
    if start is None:
        raise ValueError(f"{trial.id}: no randomization.accrual_start in the trial file")
    start = pd.Timestamp(start)
    return start, start + pd.DateOffset(months=trial.accrual_months)


def realized_vs_list(randomization: pd.DataFrame, alloc: pd.DataFrame) -> pd.DataFrame:
    """Each participant next to the list row of the same sequence number.

    The sequence is the order of study numbers (assigned in order of randomization, so a wrong
    date cannot reorder it). Columns: subject_id, sequence, rand_date, block, arm, list_block,
    list_arm, arm_matches, block_matches. Without any block number in the log, blocks are not compared.
    """
    if "stratum" in alloc:
        raise NotImplementedError("checking a stratified list needs each participant's stratum in the export")
    rand = randomization.sort_values("subject_id", kind="stable").reset_index(drop=True)
    out = pd.DataFrame({"subject_id": rand["subject_id"], "sequence": np.arange(1, len(rand) + 1),
                        "rand_date": rand["rand_date"],
                        "block": rand["block"].astype("Int64") if "block" in rand else pd.array([pd.NA] * len(rand), "Int64"),
                        "arm": rand["arm"].astype(str)})
    ref = alloc.set_index("seq").reindex(out["sequence"])
    out["list_block"] = ref["block"].astype("Int64").to_numpy()
    out["list_arm"] = ref["arm"].to_numpy()
    out["arm_matches"] = out["arm"].eq(out["list_arm"]).to_numpy(dtype=bool)
    recorded = out["block"].notna().any()
    out["block_matches"] = out["block"].eq(out["list_block"]).fillna(not recorded).to_numpy(dtype=bool)
    return out


def blocks_recorded(randomization: pd.DataFrame) -> bool:
    """Whether the randomization log records block numbers (the optional ``block`` column, not all empty)."""
    return "block" in randomization and randomization["block"].notna().any()


def allocation_mismatches(check: pd.DataFrame) -> pd.DataFrame:
    """Participants whose allocated arm (or block) differs from the list: subject, sequence, list arm, allocated arm."""
    bad = check[~check["arm_matches"] | ~check["block_matches"]]
    return pd.DataFrame({"Subject": bad["subject_id"], "Sequence": bad["sequence"], "List arm": bad["list_arm"],
                         "Allocated arm": bad["arm"], "List block": bad["list_block"],
                         "Block": bad["block"]}).reset_index(drop=True)


def received_vs_allocated(randomization: pd.DataFrame, dosing: pd.DataFrame,
                          trial: Trial | None = None) -> pd.DataFrame:
    """Per participant: arm allocated, arm of the first dose received, and the deviation if any.

    Without dose records in a trial that needs no dosing file (``Trial.doses_recorded``), what was
    received is not recorded: "Arm received" says so and no deviation is reported.
    """
    noun = trial.treatment.noun if trial else "dosing"
    rand = randomization.sort_values("subject_id")
    allocated = rand["arm"].astype(str).to_numpy()
    if trial is not None and not trial.doses_recorded(len(dosing)):
        return pd.DataFrame({"Subject": rand["subject_id"].to_numpy(), "Allocated arm": allocated,
                             "Arm received": "not recorded (no dosing file)", "Finding": ""})
    got = rand["subject_id"].map(first_doses(dosing)["arm_received"].astype(str)).astype("object")
    finding = np.select([got.isna(), got.ne(allocated)], [f"no {noun}", "received another arm"], "")
    return pd.DataFrame({"Subject": rand["subject_id"].to_numpy(), "Allocated arm": allocated,
                         "Arm received": got.to_numpy(), "Finding": finding})


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for k/n (Clopper & Pearson, Biometrika 1934), via statsmodels."""
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


def chronology(randomization: pd.DataFrame, screening: pd.DataFrame, dosing: pd.DataFrame,
               trial: Trial) -> pd.DataFrame:
    """Per participant: screening, randomization and first dose dates, and every order or window breach.

    Rules: randomized on or after screening, on or before the first dose (when dose records
    exist), inside the accrual window (``accrual_window``). ``Finding`` lists the breaches ("" when
    none). The dose column is named by the trial's treatment noun ("First dose").
    """
    start, end = accrual_window(trial)
    noun = trial.treatment.noun
    scr = screening.set_index("screening_id")["screening_date"]
    first = first_doses(dosing)["dose_date"]
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


@dataclass(frozen=True)
class AllocationCheck:
    """Every check of the realized allocation (``check_allocation``): the results of ``realized_vs_list``,
    ``received_vs_allocated``, ``allocation_ratio``, ``block_completeness`` and ``chronology``, and why a
    check was not possible (``not_checked``: "list" or "blocks" -> reason)."""
    realized: pd.DataFrame
    received: pd.DataFrame
    ratio: pd.DataFrame
    blocks: pd.DataFrame
    timing: pd.DataFrame
    not_checked: dict = field(default_factory=dict)

    def results(self, balance: pd.DataFrame) -> pd.DataFrame:
        """The tidy result table of every check and of ``balance`` (``randomization_results``)."""
        table = randomization_results(self.realized, self.received, self.ratio, self.blocks, self.timing, balance)
        skipped = pd.DataFrame([(check, "all", "", "not checked", reason) for check, reason in self.not_checked.items()],
                               columns=table.columns)
        return pd.concat([skipped, table[~table["check"].isin(list(self.not_checked))]], ignore_index=True) \
            if self.not_checked else table


def _no_blocks(trial: Trial) -> pd.DataFrame:
    columns = ["block", "block_size", "randomized", *trial.arm_codes, "complete", "balanced", "finding"]
    return pd.DataFrame(columns=columns)


def check_allocation(export: Export, trial: Trial, alloc: pd.DataFrame | None) -> AllocationCheck:
    """The realized allocation (export's randomization, screening and dosing files) checked against ``alloc``.

    Without a list (``alloc`` None) the list and block checks are not possible; without block numbers in the
    log, the block checks are not; ``not_checked`` says why.
    """
    rand, screening, doses = export["randomization"], export["screening"], export["dosing"]
    not_checked = {}
    if alloc is None:
        not_checked = {"list": NO_LIST, "blocks": NO_LIST}
        realized = realized_vs_list(rand, pd.DataFrame(columns=["seq", "block", "block_size", "arm"]))
        realized = realized.iloc[0:0]
    else:
        realized = realized_vs_list(rand, alloc)
    if alloc is not None and not blocks_recorded(rand):
        not_checked["blocks"] = "the randomization log records no block numbers, so the blocks cannot be checked"
    blocks = _no_blocks(trial) if "blocks" in not_checked else block_completeness(rand, alloc, trial)
    return AllocationCheck(realized=realized, received=received_vs_allocated(rand, doses, trial),
                           ratio=allocation_ratio(rand, trial), blocks=blocks,
                           timing=chronology(rand, screening, doses, trial), not_checked=not_checked)
