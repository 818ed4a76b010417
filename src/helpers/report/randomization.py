"""Chapter 2 (participant flow and randomization) for display: where the allocation list comes from, in
words; the allocation ratio, block, balance, mismatch, deviation and chronology tables; and the numbers
the chapter's text quotes."""
from __future__ import annotations

import hashlib

import pandas as pd

from helpers.analysis.allocation import (
    AllocationCheck,
    accrual_window,
    allocation_mismatches,
)
from helpers.data.randomization import list_file
from helpers.report.prose import early_ends_text
from helpers.trial import Trial


SMALL_ARM = 50


def first_lower(text: str) -> str:
    """A label inside a sentence: its first letter lower-cased, unless the first word is an acronym ("HIV")."""
    word = text.split(" ", 1)[0]
    return text if any(c.isupper() for c in word[1:]) or not text else text[0].lower() + text[1:]


def criteria_text(trial: Trial) -> str:
    """The trial file's inclusion criteria by name and its exclusion criteria by number, as a phrase; says when
    there are none."""
    inclusion = [first_lower(k.label) for k in trial.eligibility if k.kind == "inclusion"]
    n_exclusion = sum(k.kind == "exclusion" for k in trial.eligibility)
    included = (" and ".join([", ".join(inclusion[:-1]), inclusion[-1]] if len(inclusion) > 1 else inclusion)
                + " (inclusion)") if inclusion else "no inclusion criteria besides age"
    excluded = ("no exclusion criteria" if n_exclusion == 0 else "exclusion criterion 1" if n_exclusion == 1
                else f"exclusion criteria 1 to {n_exclusion}")
    return f"{included}, and {excluded}"


def chance_text(smallest_arm: int) -> str:
    """Why the chapter shows the spread of |SMD| chance gives, for the trial's size (small: under SMALL_ARM per arm)."""
    if smallest_arm < SMALL_ARM:
        return f"With so few participants per arm (as few as {smallest_arm}), chance alone produces sizeable SMDs"
    return f"Even with {smallest_arm} or more participants per arm, chance alone produces some imbalance"


def allocation_source(trial: Trial) -> str:
    """Where the allocation list comes from, as a phrase for the text ("The allocation list was ...")."""
    path = list_file(trial)
    if path is None and trial.randomization.seed is None:
        return "not stated in the trial file (no randomization seed and no list file)"
    if path is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else "file not found"
        return f"read from the supplied list {path.name} (SHA-256 {digest})"
    sizes = trial.block_sizes
    blocks = str(sizes[0]) if len(sizes) == 1 else ", ".join(map(str, sizes[:-1])) + f" or {sizes[-1]}"
    strata = ", one list per stratum" if trial.strata else ""
    return (f"regenerated from the trial file (permuted blocks of {blocks}, "
            f"seed {trial.randomization.seed}{strata})")


def allocation_text(trial: Trial, alloc: pd.DataFrame | None, checks: AllocationCheck) -> str:
    """The sentences on the allocation list: where it comes from and what it holds, or why there is none."""
    if "list" in checks.not_checked:
        return (f"There is no allocation list: {checks.not_checked['list']}. Each participant's arm is therefore "
                "not compared with a list, and the blocks are not checked.")
    return (f"The allocation list was {allocation_source(trial)}: permuted blocks of "
            f"{' or '.join(map(str, trial.block_sizes))}, ratio {':'.join(str(a.ratio) for a in trial.arms)}, "
            f"{strata_text(trial)}, giving {len(alloc)} allocations in whole blocks. Study numbers are issued in order of "
            "randomization, so participant k should carry the arm and block of row k of the list.")


def strata_text(trial: Trial) -> str:
    """'stratified by SITE, SEVERITY' (names or ``{code, levels}`` factors of the trial file), or 'unstratified'."""
    names = trial.strata
    return f"stratified by {', '.join(names)}" if names else "unstratified"


def mismatch_empty(checks: AllocationCheck) -> str:
    """What the empty mismatch table means: every participant matches, or the comparison was not possible."""
    if "list" in checks.not_checked:
        return f"Not checked: {checks.not_checked['list']}."
    if "blocks" in checks.not_checked:
        return "Every participant's arm matches the allocation list (blocks not recorded in the log)."
    return "Every participant's arm and block match the allocation list."


def blocks_empty(checks: AllocationCheck) -> str:
    """What an empty block table means: why the blocks were not checked."""
    reason = checks.not_checked.get("blocks")
    return f"Not checked: {reason}." if reason else "None."


def block_text(checks: AllocationCheck) -> str:
    """The sentence on the permuted blocks as used, or why they were not checked."""
    reason = checks.not_checked.get("blocks")
    if reason:
        return f"The permuted blocks are not checked: {reason}"
    blocks = checks.blocks
    return (f"Of {len(blocks)} blocks used, {int(blocks['complete'].sum())} are complete; only the last block may be "
            "incomplete, and every complete block must hold the arms in the planned ratio. Blocks breaking these "
            f"rules: {int((blocks['finding'] != '').sum())}")


def consent_not_recorded(flow: pd.DataFrame) -> str:
    """The clause on excluded persons whose consent cell is blank ("" when there is none): not a refusal."""
    n = flow.set_index("box")["n"].get("excluded:consent_not_recorded", 0)
    return f"; for {n}, consent was not recorded (blank consent cell), which is not counted as declining" if n else ""


def age_criterion(trial: Trial) -> str:
    """The age criterion as the eligibility sentence states it, or that the trial file states none."""
    if trial.age_range is None:
        return "age (no bounds: not stated in the trial file)"
    return f"age {trial.age_range[0]} to {trial.age_range[1]} years at screening"


def mismatch_table(checks: AllocationCheck) -> pd.DataFrame:
    """Participants whose arm or block differs from the allocation list (empty when none does)."""
    return allocation_mismatches(checks.realized)


def deviation_table(checks: AllocationCheck) -> pd.DataFrame:
    """Participants who did not receive the arm allocated (empty when everyone did)."""
    return checks.received[checks.received["Finding"] != ""]


def breach_table(checks: AllocationCheck) -> pd.DataFrame:
    """Participants with dates out of order or outside the accrual window (empty when none has)."""
    return checks.timing[checks.timing["Finding"] != ""]


def ratio_table(ratio: pd.DataFrame) -> pd.DataFrame:
    """Per arm: randomized, proportion, exact 95% CI and planned proportion, to three decimals."""
    table = ratio.assign(**{"95% CI": [f"{lo:.3f} to {hi:.3f}" for lo, hi in zip(ratio["ci_lower"], ratio["ci_upper"])]})
    table = table.rename(columns={"label": "Arm", "n": "Randomized (n)", "proportion": "Proportion",
                                  "planned": "Planned"})[["Arm", "Randomized (n)", "Proportion", "95% CI", "Planned"]]
    return table.round(3)


def block_table(blocks: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Permuted blocks as used: size, randomized, n per arm, complete (yes/no) and any finding."""
    table = blocks.rename(columns={"block": "Block", "block_size": "Size", "randomized": "Randomized",
                                   "complete": "Complete", "finding": "Finding"})
    table = table.rename(columns={a.code: f"{a.label} (n)" for a in trial.arms})
    table["Complete"] = table["Complete"].map({True: "yes", False: "no"})
    return table.drop(columns="balanced")


def balance_table(balance: pd.DataFrame) -> pd.DataFrame:
    """Absolute SMD per comparison and baseline row next to the 95th percentile chance gives, two decimals."""
    return balance.rename(columns={"comparison": "Comparison", "variable": "Characteristic", "level": "Level",
                                   "abs_smd": "|SMD|", "chance_p95": "95th percentile by chance"}).round(2)


def chapter_numbers(trial: Trial, flow: pd.DataFrame, alloc: pd.DataFrame | None, checks: AllocationCheck,
                    balance: pd.DataFrame) -> dict[str, object]:
    """The numbers chapter 2's text quotes, by glue name: eligibility and flow counts, the allocation list,
    the checks of the realized allocation, the accrual window and baseline balance. What the trial file
    does not state, or what could not be checked, is said in words."""
    n = flow.set_index("box")["n"]
    ratio, blocks = checks.ratio, checks.blocks
    window = accrual_window(trial)
    seed = trial.randomization.seed
    not_stated = "not stated in the trial file"
    return {
        "n_screened": int(n["assessed"]),
        "age_min": trial.age_range[0] if trial.age_range else not_stated,
        "age_max": trial.age_range[1] if trial.age_range else not_stated,
        "age_criterion": age_criterion(trial),
        "allocation_text": allocation_text(trial, alloc, checks),
        "block_text": block_text(checks),
        "n_exclusions": sum(k.kind == "exclusion" for k in trial.eligibility),
        "criteria_text": criteria_text(trial),
        "chance_text": chance_text(int(ratio["n"].min())) if len(ratio) else chance_text(0),
        "allocation_source": allocation_source(trial),
        "n_excluded": int(n["excluded"]),
        "n_criteria": int(n["excluded:criteria"]),
        "n_declined": int(n["excluded:declined"]),
        "consent_not_recorded": consent_not_recorded(flow),
        "n_randomized": int(n["randomized"]),
        "block_sizes": " or ".join(map(str, trial.block_sizes)),
        "ratio": ":".join(str(a.ratio) for a in trial.arms),
        "list_seed": not_stated if seed is None else str(seed),
        "list_length": 0 if alloc is None else len(alloc),
        "n_mismatch": "not checked (no allocation list)" if "list" in checks.not_checked else len(mismatch_table(checks)),
        "n_deviation": len(deviation_table(checks)),
        "n_blocks": len(blocks),
        "n_complete": int(blocks["complete"].sum()),
        "n_block_problems": int((blocks["finding"] != "").sum()),
        "n_chronology": len(breach_table(checks)),
        "window": f"{window[0]:%d %B %Y} to {window[1]:%d %B %Y}",
        "ratio_ci": "; ".join(f"{r.label} {r.n}/{r.total} = {r.proportion:.2f} "
                              f"(95% CI {r.ci_lower:.2f} to {r.ci_upper:.2f})" for r in ratio.itertuples()),
        "n_balance_rows": len(balance),
        "n_above_chance": int((balance["abs_smd"] > balance["chance_p95"]).sum()),
        "max_smd": f"{balance['abs_smd'].max():.2f}",
        "early_ends": early_ends_text(trial),
    }
