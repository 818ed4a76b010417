"""Chapter 3 for display: Table 1 from the tidy baseline summary, and the numbers the chapter's text quotes.

Continuous rows: mean (SD) and median [Q1, Q3] with one decimal more than the data are recorded with
(at most 3); categorical rows: n (%) of those with a value; missing counts shown where any.
"""
from __future__ import annotations

import pandas as pd

from helpers.analysis.baseline import OVERALL, baseline_variables
from helpers.analysis.cohort import arm_n
from helpers.report.cohort import arm_header
from helpers.report.tables import fixed, recorded_decimals
from helpers.trial import Trial


def table_one(summary: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, variables: list[dict] | None = None) -> pd.DataFrame:
    """Display Table 1 from ``baseline_summary``: one row per statistic or level, N in the column headers."""
    variables = baseline_variables(trial, adsl) if variables is None else variables
    header = arm_header(adsl[adsl["ITTFL"] == "Y"], trial)
    header[OVERALL] = f"{OVERALL} (N={int((adsl['ITTFL'] == 'Y').sum())})"
    s = summary.set_index(["variable", "level", "group", "statistic"])["value"]
    groups = list(header)
    indent = "\u2003"
    rows = []
    for v in variables:
        lab = v["label"]
        missing = [int(s[(lab, "", g, "missing")]) for g in groups]
        if v["type"] == "continuous":
            dec = min(recorded_decimals(adsl[v["column"]], 2) + 1, 3)
            f = lambda x, d=dec: f"{x:.{d}f}"
            rows.append([f"{lab}, mean (SD)"] + [f"{f(s[(lab, '', g, 'mean')])} ({f(s[(lab, '', g, 'sd')])})"
                                                  for g in groups])
            rows.append([f"{indent}median [Q1, Q3]"] + [
                f"{f(s[(lab, '', g, 'median')])} [{f(s[(lab, '', g, 'q1')])}, {f(s[(lab, '', g, 'q3')])}]"
                for g in groups])
        else:
            rows.append([f"{lab}, n (%)"] + [""] * len(groups))
            for level in v["levels"]:
                name = v["level_labels"].get(level, level)
                rows.append([f"{indent}{name}"] + [f"{int(s[(lab, name, g, 'n')])} ({fixed(s[(lab, name, g, 'pct')], 1)}%)"
                                                   for g in groups])
        if any(missing):
            rows.append([f"{indent}missing, n"] + [str(m) for m in missing])
    return pd.DataFrame(rows, columns=["Characteristic"] + [header[g] for g in groups])


def chapter_numbers(adsl: pd.DataFrame, trial: Trial) -> dict[str, object]:
    """The numbers chapter 3's text quotes, by glue name: the ITT population, in total and per arm."""
    return {"n_itt": int((adsl["ITTFL"] == "Y").sum()),
            "n_per_arm": ", ".join(f"{n} {label}" for label, n in arm_n(adsl, trial).items())}
