"""Descriptions of the cohort as a whole: data checks, accrual over time, visit completeness."""
from __future__ import annotations

import pandas as pd

from .loading import Export
from .tables import fixed, n_pct
from .trial import Trial


def arm_n(adsl: pd.DataFrame, trial: Trial) -> dict[str, int]:
    """Participants randomized per arm (TRT01P label), in the trial file's arm order."""
    counts = adsl["TRT01P"].value_counts()
    return {a.label: int(counts.get(a.label, 0)) for a in trial.arms}


def arm_header(adsl: pd.DataFrame, trial: Trial) -> dict[str, str]:
    """Arm label -> 'Label (N=n)', the column header of every by-arm table and legend."""
    return {label: f"{label} (N={n})" for label, n in arm_n(adsl, trial).items()}


def export_summary(export: Export) -> pd.DataFrame:
    """Rows and participants per file of the export, and validation warnings per file."""
    warn = pd.Series([w.file.rsplit(".", 1)[0] for w in export.warnings], dtype="object").value_counts()
    rows = []
    for name, table in export.tables.items():
        id_col = "subject_id" if "subject_id" in table else "screening_id"
        rows.append({"File": name, "Rows": len(table), "Persons": table[id_col].nunique(),
                     "Warnings": int(warn.get(name, 0))})
    return pd.DataFrame(rows)


def validation_warnings(export: Export) -> pd.DataFrame:
    """Non-fatal findings (visits outside their window) as a table, by participant."""
    cols = ["File", "Row", "Column", "Rule", "Finding"]
    return pd.DataFrame([(w.file, w.row, w.column, w.rule, w.message) for w in export.warnings], columns=cols)


def accrual_by_month(adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Participants randomized per calendar month and arm, with cumulative totals (long format)."""
    month = adsl["RANDDT"].dt.to_period("M")
    months = pd.period_range(month.min(), month.max(), freq="M")
    counts = (pd.crosstab(month, adsl["TRT01P"]).reindex(index=months, columns=[a.label for a in trial.arms])
              .fillna(0).astype(int))
    counts.index.name = "Month"
    out = counts.stack().rename("Randomized").reset_index().rename(columns={"TRT01P": "Arm"})
    out["Cumulative"] = out.groupby("Arm")["Randomized"].cumsum()
    out["Month"] = out["Month"].astype(str)
    return out


def cumulative_accrual_table(accrual: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """Wide table of cumulative randomizations, one column per arm (N in the header), in trial order."""
    wide = accrual.pivot(index="Month", columns="Arm", values="Cumulative")[list(header)]
    wide.columns = [header[a] for a in wide.columns]
    return wide.reset_index()


def visit_status(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """One row per participant and visit: attended, or follow-up ended before it (and why).

    A participant is expected at a visit unless death, transplant or withdrawal came before the
    visit's target day; attendance is a laboratory record at that visit.
    """
    seen = set(zip(adlb["USUBJID"], adlb["AVISITN"]))
    ref = adsl["TRTSDT"].fillna(adsl["RANDDT"])
    rows = []
    for v in trial.visits:
        attended = pd.Series([(u, v.week) in seen for u in adsl["USUBJID"]], index=adsl.index, dtype=bool)
        ended = (adsl["EOSSTT"].eq("DISCONTINUED") & (adsl["EOSDT"] < ref + pd.Timedelta(days=v.day - 1))
                 & ~attended)
        rows.append(pd.DataFrame({"USUBJID": adsl["USUBJID"], "ARMCD": adsl["ARMCD"], "Visit": v.label,
                                  "attended": attended, "ended": ended, "reason": adsl["DCSREAS"].where(ended)}))
    return pd.concat(rows, ignore_index=True)


def visit_completeness(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """By arm and visit: randomized, ended follow-up before the visit, expected, attended, missed, % attended."""
    status = visit_status(adsl, adlb, trial)
    rows = []
    for arm in trial.arms:
        for v in trial.visits:
            d = status[(status["ARMCD"] == arm.code) & (status["Visit"] == v.label)]
            expected, attended = int((~d["ended"]).sum()), int(d["attended"].sum())
            rows.append({"Arm": arm.label, "Visit": v.label, "Randomized": len(d),
                         "Ended before visit": int(d["ended"].sum()), "Expected": expected,
                         "Attended": attended, "Missed": expected - attended,
                         "% attended": round(100 * attended / expected, 1) if expected else float("nan")})
    return pd.DataFrame(rows)


def disposition(adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """End-of-study status and reason by arm, n (%) of those randomized."""
    status = adsl["EOSSTT"].str.capitalize().where(adsl["DCSREAS"].isna(),
                                                   "Discontinued: " + adsl["DCSREAS"].fillna("").str.lower())
    header = arm_header(adsl, trial)
    out = {"Status": sorted(status.unique(), key=lambda s: (not s.startswith("Completed"), s))}
    for arm in trial.arms:
        in_arm = adsl["ARMCD"] == arm.code
        out[header[arm.label]] = [n_pct(int((status[in_arm] == s).sum()), int(in_arm.sum())) for s in out["Status"]]
    out[f"Total (N={len(adsl)})"] = [n_pct(int((status == s).sum()), len(adsl)) for s in out["Status"]]
    return pd.DataFrame(out)


def completeness_table(completeness: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """Compact report table: per visit and arm, attended / expected (%) and follow-up ended before the visit."""
    out = pd.DataFrame({"Visit": list(dict.fromkeys(completeness["Visit"]))})
    for arm, label in header.items():
        d = completeness[completeness["Arm"] == arm].set_index("Visit").loc[out["Visit"]]
        out[f"{label}: attended / expected"] = [f"{a} / {e} ({fixed(p, 0)}%)" for a, e, p in
                                               zip(d["Attended"], d["Expected"], d["% attended"])]
        out[f"{label}: ended before visit"] = d["Ended before visit"].to_numpy()
    return out
