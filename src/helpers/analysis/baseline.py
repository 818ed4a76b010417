"""Table 1's numbers: baseline characteristics of the randomized (ITT) population, by arm and overall,
as a tidy table (the display table is ``helpers.report.baseline.table_one``).

Rows and labels come from the trial file (``baseline_covariates``, then every laboratory
endpoint at baseline, ADSL ``<PARAMCD>BL``). Continuous rows: ``summaries.describe`` (n, mean, SD,
median, quartiles) and missing; categorical rows: n and % of those with a value, and missing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis.summaries import describe
from helpers.data.schema import load_schema
from helpers.scores import GRADE_UNKNOWN
from helpers.trial import Covariate, Trial, label_with_unit

OVERALL = "Overall"
_LEVEL_LABELS = {"SEX": {"F": "Female", "M": "Male"}}  # CDISC SEX codes


def _levels(cov: Covariate, trial: Trial, values: pd.Series) -> list[str]:
    """Levels of a categorical row, in display order: the trial file's ``levels``, else the allowed values of its
    source column (the trial file's clinical assessment, the export schema's screening column), the class levels of a derived parameter, or the observed ones sorted. "Present,
    grade unknown" is shown only when recorded."""
    kind, name = cov.origin
    seen = set(values.dropna().astype(str))
    if cov.levels:
        stated = list(cov.levels)
    elif kind == "clinical" and trial.clinical_assessment(name) is not None:
        stated = list(trial.clinical_assessment(name).allowed)
    elif kind == "screening":
        col = next((c for c in load_schema()[kind].columns if c.name == name), None)
        stated = [str(v) for v in col.allowed] if col is not None and col.allowed else sorted(seen)
    elif kind == "class":
        stated = list(trial.derived(name).classes.levels)
    else:
        stated = sorted(seen)
    return [v for v in stated if v != GRADE_UNKNOWN or v in seen]


def baseline_variables(trial: Trial, adsl: pd.DataFrame) -> list[dict]:
    """Table 1 rows in the trial file's order: baseline covariates, then each lab endpoint at baseline.

    Each is {code, column (ADSL), label (with unit), type, levels, level_labels}.
    """
    out = []
    for cov in trial.baseline_covariates:
        code, kind = cov.code, cov.type
        out.append({"code": code, "column": code, "label": label_with_unit(cov.label, cov.unit), "type": kind,
                    "levels": _levels(cov, trial, adsl[code]) if kind == "categorical" else [],
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
                stats = {**describe(x), "missing": int(x.isna().sum())}
                rows += [(v["label"], "", group, k, val) for k, val in stats.items()]
                continue
            present = x.dropna().astype(str)
            for level in v["levels"]:
                k = int((present == level).sum())
                name = v["level_labels"].get(level, level)
                rows += [(v["label"], name, group, "n", k),
                         (v["label"], name, group, "pct", 100 * k / len(present) if len(present) else np.nan)]
            rows.append((v["label"], "", group, "missing", int(x.isna().sum())))
    return pd.DataFrame(rows, columns=["variable", "level", "group", "statistic", "value"])
