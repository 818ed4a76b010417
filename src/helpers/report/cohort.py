"""Chapter 1 (the cohort) for display: by-arm column headers, validation warnings, accrual and visit
completeness tables, end-of-study status as n (%), and the numbers the chapter's text quotes."""
from __future__ import annotations

import pandas as pd

from helpers.analysis.cohort import arm_n, is_total
from helpers.data.loading import Export, summary_by_rule
from helpers.report.prose import early_ends_text
from helpers.report.tables import fixed, n_pct
from helpers.trial import Trial


def arm_header(adsl: pd.DataFrame, trial: Trial) -> dict[str, str]:
    """Arm label -> 'Label (N=n)', the column header of every by-arm table and legend."""
    return {label: f"{label} (N={n})" for label, n in arm_n(adsl, trial).items()}


def warnings_by_rule(export: Export) -> pd.DataFrame:
    """Validation warnings counted by rule, with the first examples (file, row, column)."""
    s = summary_by_rule([], export.warnings)
    return pd.DataFrame({"Rule": s["rule"], "Warnings": s["count"], "First examples": s["examples"]})


def cumulative_accrual_table(accrual: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """Wide table of cumulative randomizations (from ``accrual_by_month``), one column per arm (N in the
    header), in trial order."""
    wide = accrual.pivot(index="Month", columns="Arm", values="Cumulative")[list(header)]
    wide.columns = [header[a] for a in wide.columns]
    return wide.reset_index()


def completeness_table(completeness: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """Compact table of ``visit_completeness``: per visit and arm, attended / expected (%), follow-up ended
    before the visit and, only when any visit is not yet due (an interim look), the count not yet due."""
    out = pd.DataFrame({"Visit": list(dict.fromkeys(completeness["Visit"]))})
    show_due = "Not yet due" in completeness and bool((completeness["Not yet due"] > 0).any())
    for arm, label in header.items():
        d = completeness[completeness["Arm"] == arm].set_index("Visit").loc[out["Visit"]]
        out[f"{label}: attended / expected"] = [f"{a} / {e} ({fixed(p, 0)}%)" if e else f"{a} / {e}"
                                               for a, e, p in zip(d["Attended"], d["Expected"], d["% attended"])]
        out[f"{label}: ended before visit"] = d["Ended before visit"].to_numpy()
        if show_due:
            out[f"{label}: not yet due"] = d["Not yet due"].to_numpy()
    return out


def missing_values(missingness: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``cohort.missingness_table`` (or ``missingness_by_visit``) with any value missing, the total
    row aside (empty when none is)."""
    return missingness[(missingness["Missing"] > 0) & ~is_total(missingness)]


def disposition(counts: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """End-of-study status and reason by arm, n (%) of those randomized (``counts``: ``cohort.disposition_counts``,
    as the ARD gives them back)."""
    header = arm_header(adsl, trial) | {"Total": f"Total (N={len(adsl)})"}
    out = counts.pivot(index="STATUS", columns="ARM", values="n").loc[counts["STATUS"].unique()]
    size = counts.drop_duplicates("ARM").set_index("ARM")["N"]
    table = pd.DataFrame({"Status": out.index})
    for arm in [a.label for a in trial.arms] + ["Total"]:
        table[header[arm]] = [n_pct(int(n), int(size[arm])) for n in out[arm]]
    return table


def chapter_numbers(export: Export, adsl: pd.DataFrame, missingness: pd.DataFrame, trial: Trial,
                    source: str) -> dict[str, object]:
    """The numbers chapter 1's text quotes, by glue name: data source, screened, randomized (per arm),
    validation warnings, laboratory values expected and missing at scheduled visits (the total row of
    ``missingness``: ``cohort.missingness_table``), and the early ends of follow-up."""
    total = missingness[is_total(missingness)].iloc[0]
    return {"source": source, "n_screened": len(export["screening"]), "n_randomized": len(adsl),
            "n_per_arm": ", ".join(f"{n} to {label}" for label, n in arm_n(adsl, trial).items()),
            "n_warnings": len(export.warnings), "n_missing": int(total["Missing"]),
            "n_values": int(total["Records"]), "early_ends": early_ends_text(trial)}
