"""Table 1: baseline characteristics of the randomized (ITT) population, by arm and overall.

Rows and labels come from the trial file (``baseline_covariates``, then every laboratory
endpoint at baseline, ADSL ``<PARAMCD>BL``). Continuous rows: mean (SD) and median [Q1, Q3]
(quartiles by linear interpolation, numpy's default, Hyndman & Fan type 7); categorical rows:
n (%) of those with a value; missing counts shown where any.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis.cohort import arm_header
from helpers.data.schema import load_schema
from helpers.report.tables import fixed
from helpers.trial import Trial

OVERALL = "Overall"
_SCHEMA_LEVELS = {"SEX": ("screening", "sex"), "ETIOLOGY": ("screening", "etiology"),
                  "ASCITES": ("clinical", "ascites"), "HEPENC": ("clinical", "encephalopathy")}
_FIXED_LEVELS = {"CPCLASS": ("A", "B", "C")}  # Child-Pugh classes (Pugh et al., Br J Surg 1973)
_LEVEL_LABELS = {"SEX": {"F": "Female", "M": "Male"}}  # CDISC SEX codes


def _levels(code: str, values: pd.Series) -> list[str]:
    """Levels of a categorical row: the schema's allowed values, fixed classes, or the observed ones sorted."""
    if code in _SCHEMA_LEVELS:
        file, column = _SCHEMA_LEVELS[code]
        col = next(c for c in load_schema()[file].columns if c.name == column)
        return [str(v) for v in col.allowed]
    if code in _FIXED_LEVELS:
        return list(_FIXED_LEVELS[code])
    return sorted(values.dropna().astype(str).unique())


def _label(name: str, unit: str | None) -> str:
    return name if unit in (None, "", "1") else f"{name} ({unit})"


def baseline_variables(trial: Trial, adsl: pd.DataFrame) -> list[dict]:
    """Table 1 rows in the trial file's order: baseline covariates, then each lab endpoint at baseline.

    Each is {code, column (ADSL), label (with unit), type, levels, level_labels}.
    """
    out = []
    for cov in trial.baseline_covariates:
        code, kind = cov["code"], cov.get("type", "continuous")
        out.append({"code": code, "column": code, "label": _label(cov["label"], cov.get("unit")), "type": kind,
                    "levels": _levels(code, adsl[code]) if kind == "categorical" else [],
                    "level_labels": _LEVEL_LABELS.get(code, {})})
    seen = {v["code"] for v in out}
    for e in trial.lab_endpoints:
        if e.code not in seen and f"{e.code}BL" in adsl:
            out.append({"code": e.code, "column": f"{e.code}BL", "label": e.label_with_unit, "type": "continuous",
                        "levels": [], "level_labels": {}})
    return out


def _groups(adsl: pd.DataFrame, trial: Trial) -> list[tuple[str, pd.DataFrame]]:
    itt = adsl[adsl["ITTFL"] == "Y"]
    return [(a.label, itt[itt["ARMCD"] == a.code]) for a in trial.arms] + [(OVERALL, itt)]


def _continuous(x: pd.Series) -> dict:
    v = x.astype("Float64").dropna().to_numpy(dtype=float)
    n = len(v)
    q1, med, q3 = np.percentile(v, [25, 50, 75]) if n else (np.nan,) * 3
    return {"n": n, "mean": v.mean() if n else np.nan, "sd": v.std(ddof=1) if n > 1 else np.nan,
            "median": med, "q1": q1, "q3": q3, "missing": int(x.isna().sum())}


def baseline_summary(adsl: pd.DataFrame, trial: Trial, variables: list[dict] | None = None) -> pd.DataFrame:
    """Tidy Table 1: variable, level, group, statistic, value (groups: each arm label, then Overall).

    Continuous: n, mean, sd, median, q1, q3, missing. Categorical: per level n and pct (of those
    with a value), and missing (level "").
    """
    variables = baseline_variables(trial, adsl) if variables is None else variables
    rows = []
    for group, d in _groups(adsl, trial):
        rows.append(("N", "", group, "n", len(d)))
        for v in variables:
            x = d[v["column"]]
            if v["type"] == "continuous":
                rows += [(v["label"], "", group, k, val) for k, val in _continuous(x).items()]
                continue
            present = x.dropna().astype(str)
            for level in v["levels"]:
                k = int((present == level).sum())
                name = v["level_labels"].get(level, level)
                rows += [(v["label"], name, group, "n", k),
                         (v["label"], name, group, "pct", 100 * k / len(present) if len(present) else np.nan)]
            rows.append((v["label"], "", group, "missing", int(x.isna().sum())))
    return pd.DataFrame(rows, columns=["variable", "level", "group", "statistic", "value"])


def _decimals(values: pd.Series) -> int:
    """Decimals for a continuous row: one more than the data carry, at most 3."""
    v = values.astype("Float64").dropna().to_numpy(dtype=float)
    for d in range(3):
        if np.allclose(v, np.round(v, d)):
            return d + 1
    return 3


def table_one(summary: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, variables: list[dict] | None = None) -> pd.DataFrame:
    """Display Table 1 from the tidy summary: one row per statistic or level, N in the column headers."""
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
            dec = _decimals(adsl[v["column"]])
            f = lambda x: f"{x:.{dec}f}"  # noqa: E731
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
