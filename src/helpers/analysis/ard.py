"""The analysis results dataset (ARD): every result of the plan as one long table, one statistic per row.

Modelled on CDISC's Analysis Results Standard and pharmaverse {cards}: the analyses run once
(``helpers.analysis.results``); the ARD holds their numbers with what each one is (analysis, endpoint, visit,
population, dataset and filter, groups, statistic, method, role in the plan). The result tables in
``_build/results/`` are views of it (``result_table``), the verdicts read their p-values from it
(``ard_value``), and a sponsor's QC compares two ARDs.

Columns (``COLUMNS``): ANALYSIS_ID (result table, and the analysis inside it where a table holds several),
RESULT (the result table's file name), ROW (its row), ROLE (primary, key secondary, secondary, sensitivity,
safety, descriptive, design, plan), PARAMCD, AVISIT, POPULATION, DATASET, FILTER, GROUP1/GROUP1_LEVEL (the arm
variable and arm), GROUP2/GROUP2_LEVEL (a second grouping: contrast reference, level, term, class),
VARIABLE/VARIABLE_LEVEL (what is summarised), STAT_NAME, STAT (a number) or STAT_TEXT (a label), STAT_TYPE
(integer, real, logical or text: what the value was in its table, so that a view gives back counts as integers),
METHOD.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from helpers.analysis.mmrm import STRUCTURE_NAMES
from helpers.trial import Trial

COLUMNS = ["ANALYSIS_ID", "RESULT", "ROW", "ROLE", "PARAMCD", "AVISIT", "POPULATION", "DATASET", "FILTER",
           "GROUP1", "GROUP1_LEVEL", "GROUP2", "GROUP2_LEVEL", "VARIABLE", "VARIABLE_LEVEL", "STAT_NAME", "STAT",
           "STAT_TEXT", "STAT_TYPE", "METHOD"]
KEY_COLUMNS = ("PARAMCD", "AVISIT", "GROUP1_LEVEL", "GROUP2_LEVEL", "VARIABLE", "VARIABLE_LEVEL", "ROLE")
MODEL_STATS = {"lower": "lcl", "upper": "ucl", "p_value": "p"}
TTE_STATS = {"ESTIMATE": "estimate", "LCL": "lcl", "UCL": "ucl", "PVALUE": "p", "EVENTS": "events", "N": "n",
             "PHOLM": "p_holm"}

ITT, SAFETY = "ITT (ITTFL = 'Y')", "safety (SAFFL = 'Y'), as treated"
ANALYSED = "ANL01FL = 'Y'"


@dataclass(frozen=True)
class Layout:
    """How one result table enters the ARD: which of its columns are keys (and into which ARD column), which
    column names the analysis inside it, and what the rows are (population, dataset, filter, method, role)."""
    keys: dict[str, str]
    population: str
    dataset: str
    filter: str | Callable[[pd.Series, Trial], str]
    method: str | Callable[[pd.Series, Trial], str]
    role: str | Callable[[pd.Series, Trial], str]
    group1: str = "TRT01P"
    group2: str = ""
    analysis: str | None = None
    stats: dict[str, str] = field(default_factory=lambda: MODEL_STATS)
    long: tuple[str, str] | None = None
    integer_keys: tuple[str, ...] = ()


def _efficacy_role(row: pd.Series, trial: Trial) -> str:
    pe = trial.primary_endpoint
    if row.get("PARAMCD") == pe.code:
        return "primary"
    return "key secondary" if row.get("PARAMCD") == trial.key_secondary else "secondary"


def _mmrm_method(row: pd.Series, trial: Trial) -> str:
    cov = STRUCTURE_NAMES.get(row.get("covariance"), row.get("covariance"))
    return f"MMRM, {cov}, REML, Satterthwaite df; {row.get('scale')}"


def _param_filter(column: str = "PARAMCD", base: str = "") -> Callable[[pd.Series, Trial], str]:
    return lambda row, trial: f"{base}PARAMCD = '{row.get(column)}'"


_MODEL_KEYS = {"PARAMCD": "PARAMCD", "AVISIT": "AVISIT", "TRT01P": "GROUP1_LEVEL"}
_POST_BASELINE = f"{ANALYSED} and AVISITN > 0 and AVAL, BASE present and "

LAYOUTS: dict[str, Layout] = {
    "baseline": Layout({"variable": "VARIABLE", "level": "VARIABLE_LEVEL", "group": "GROUP1_LEVEL"}, ITT, "ADSL",
                       "", "n, mean (SD), median [Q1, Q3]; n (%)", "descriptive",
                       long=("statistic", "value")),
    "randomization": Layout({"check": "VARIABLE", "item": "VARIABLE_LEVEL", "level": "GROUP2_LEVEL"}, "randomized",
                            "ADSL", "", "allocation list, ratio, blocks and balance (SMD, 2,000 permutations)",
                            "descriptive", group1="", group2="level", long=("statistic", "value")),
    "lab_by_visit": Layout({"PARAMCD": "PARAMCD", "AVISIT": "AVISIT", "TRT01P": "GROUP1_LEVEL",
                            "variable": "VARIABLE"}, ITT, "ADLB", lambda r, t: f"{ANALYSED} and PARAMCD = '{r['PARAMCD']}'",
                           "n, mean, SD, median, Q1, Q3", "descriptive"),
    "ancova": Layout(_MODEL_KEYS, ITT, "ADLB", _param_filter(base=_POST_BASELINE),
                     lambda r, t: f"ANCOVA of the change, adjusted for baseline, OLS; {r.get('scale')}", "sensitivity",
                     group2="reference"),
    "mmrm": Layout(_MODEL_KEYS, ITT, "ADLB", _param_filter(base=_POST_BASELINE), _mmrm_method, _efficacy_role),
    "holm": Layout(_MODEL_KEYS, ITT, "ADLB", _param_filter(base=_POST_BASELINE),
                   lambda r, t: _mmrm_method(r, t) + "; Holm across the secondary endpoints", _efficacy_role),
    "survival": Layout({"PARAMCD": "PARAMCD", "ANALYSIS": "ANALYSIS_ID", "ARM": "GROUP1_LEVEL",
                        "REFERENCE": "GROUP2_LEVEL"}, ITT, "ADTTE", _param_filter(),
                       lambda r, t: str(r["ANALYSIS"]),
                       lambda r, t: "primary" if r["PARAMCD"] == t.primary_endpoint.code else "secondary",
                       group2="reference", analysis="ANALYSIS", stats=TTE_STATS),
    "adverse_events": Layout({"CATEGORY": "VARIABLE", "TERM": "VARIABLE_LEVEL", "ARM": "GROUP1_LEVEL"}, SAFETY,
                             "ADAE", "SAFFL = 'Y'", "participants with an event, n (%); events", "safety",
                             group1="TRT01A"),
    "sensitivity": Layout({"analysis": "ANALYSIS_ID"}, ITT, "ADLB",
                          lambda r, t: f"{ANALYSED} and PARAMCD = '{t.sensitivity_endpoint}'",
                          lambda r, t: f"{r['analysis']}; {r['strategy']}", "sensitivity", analysis="analysis"),
    "design": Layout({"scenario": "VARIABLE_LEVEL", "endpoint": "VARIABLE"}, "simulated trials", "", "",
                     lambda r, t: f"{int(r['replicates'])} simulated trials per scenario", "design", group1="",
                     integer_keys=("scenario",)),
    "key_results": Layout({"ROLE": "ROLE", "ENDPOINT": "PARAMCD", "ANALYSIS": "ANALYSIS_ID", "ARM": "GROUP1_LEVEL",
                           "REFERENCE": "GROUP2_LEVEL"},
                          ITT, "ADTTE, ADLB, ADAE", "", lambda r, t: str(r["ANALYSIS"]), "", group2="reference",
                          analysis="ANALYSIS", stats=TTE_STATS),
    "mean_ci": Layout({"PARAMCD": "PARAMCD", "AVISIT": "AVISIT", "TRT01P": "GROUP1_LEVEL"}, ITT, "ADLB",
                      _param_filter(base=f"{ANALYSED} and "), "mean or geometric mean, t-based 95% CI", "descriptive"),
    "km": Layout({"PARAMCD": "PARAMCD", "ARM": "GROUP1_LEVEL"}, ITT, "ADTTE", _param_filter(),
                 "Kaplan-Meier, Greenwood variance, log(-log) 95% CI", "descriptive"),
    "vital_status": Layout({"PARAMCD": "PARAMCD", "ARM": "GROUP1_LEVEL", "STATUS": "VARIABLE_LEVEL"}, ITT, "ADTTE",
                           _param_filter(), "status at the horizon, n (%)", "descriptive"),
    "disposition": Layout({"STATUS": "VARIABLE_LEVEL", "ARM": "GROUP1_LEVEL"}, "randomized", "ADSL", "",
                          "end-of-study status, n (%)", "descriptive"),
    "missingness": Layout({"Parameter": "VARIABLE", "Visit": "AVISIT"}, "all records", "ADLB", "",
                          "laboratory records and missing values", "descriptive", group1=""),
    "tipping": Layout({"TRT01P": "GROUP1_LEVEL"}, ITT, "ADLB",
                      lambda r, t: f"{ANALYSED} and PARAMCD = '{t.sensitivity_endpoint}'",
                      "delta-adjusted multiple imputation (tipping point), Rubin's rules", "sensitivity"),
    "tipping_point": Layout({"TRT01P": "GROUP1_LEVEL"}, ITT, "ADLB",
                            lambda r, t: f"{ANALYSED} and PARAMCD = '{t.sensitivity_endpoint}'",
                            "delta at which the conclusion changes (tipping point)", "sensitivity"),
    "design_effects": Layout({"endpoint": "VARIABLE", "scenario": "VARIABLE_LEVEL"}, "simulated trials", "", "",
                             "detectable effect (Wald, empirical SE under the null); model SE / empirical SE; "
                             "SD of the change under no effect",
                             "design", group1="", long=("statistic", "value"), integer_keys=("scenario",)),
    "plan": Layout({}, "analysis plan", "", "", "the analysis plan's settings", "plan", group1="",
                   long=("setting", "value")),
    "allocation_list": Layout({"seq": "VARIABLE_LEVEL"}, "allocation list", "", "", "stated allocation list",
                              "descriptive", group1="", integer_keys=("seq",)),
}
_PATTERNS = {r"_class_shift$": Layout({"TRT01P": "GROUP1_LEVEL", "BASECLASS": "GROUP2_LEVEL",
                                       "POSTCLASS": "VARIABLE_LEVEL", "AVISIT": "AVISIT"}, ITT, "ADLB", ANALYSED,
                                      "shift table of classes, baseline to visit", "descriptive", group2="BASECLASS"),
             r"_best_class$": Layout({"TRT01P": "GROUP1_LEVEL", "AVISIT": "AVISIT"}, ITT, "ADLB", ANALYSED,
                                     "proportion in the best class, 95% CI", "descriptive")}


def layout(name: str) -> Layout:
    """The layout of result table ``name`` (classed scores' tables are named after their score)."""
    if name in LAYOUTS:
        return LAYOUTS[name]
    for pattern, lay in _PATTERNS.items():
        if re.search(pattern, name):
            return lay
    raise KeyError(f"result table {name!r} has no ARD layout: add one to helpers.analysis.ard.LAYOUTS")


def _resolve(value, row: pd.Series, trial: Trial) -> str:
    return value(row, trial) if callable(value) else value


def _column_type(dtype) -> str | None:
    """The type of every value of a column of this dtype (None for a column of mixed values)."""
    if pd.api.types.is_bool_dtype(dtype):
        return "logical"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "real"
    if dtype != object and pd.api.types.is_string_dtype(dtype):
        return "text"
    return None


def _cell(value, column_type: str | None) -> tuple[float, object, str | None]:
    """A cell as (STAT, STAT_TEXT, STAT_TYPE): a number in the first, text (or a logical's True/False) in the
    second, missing in both; the type is the value's, or the column's for a missing value."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return np.nan, None, column_type
    if isinstance(value, (bool, np.bool_)):
        return np.nan, str(bool(value)), "logical"
    if isinstance(value, (int, np.integer)):
        return float(value), None, "integer"
    if isinstance(value, (float, np.floating)):
        return float(value), None, "real"
    return np.nan, str(value), "text"


def _paramcd_of(name: str) -> str | None:
    """The score a classed score's table is named after (``<score>_class_shift``), else None."""
    m = re.match(r"(.+)_(class_shift|best_class)$", name)
    return m.group(1).upper() if m else None


def _column_cells(values: pd.Series, kind: str | None) -> tuple[np.ndarray, list, list]:
    """STAT, STAT_TEXT and STAT_TYPE of every cell of one column: ``_cell``, a column at a time where the column
    has one type."""
    n = len(values)
    if kind in ("integer", "real"):
        return values.astype(float).to_numpy(), [None] * n, [kind] * n
    if kind in ("logical", "text"):
        text = [None if pd.isna(v) else str(bool(v)) if kind == "logical" else str(v) for v in values]
        return np.full(n, np.nan), text, [kind] * n
    cells = [_cell(v, kind) for v in values]
    return np.array([c[0] for c in cells], dtype=float), [c[1] for c in cells], [c[2] for c in cells]


def table_ard(name: str, table: pd.DataFrame, trial: Trial) -> dict[str, list]:
    """The ARD rows of one result table, by ARD column: one per cell that is not a key, row by row."""
    lay = layout(name)
    records = table.to_dict("records")
    n = len(records)
    stat_columns = [lay.long[1]] if lay.long else [c for c in table.columns if c not in lay.keys]
    m = len(stat_columns)
    base = {column: [None] * n for column in COLUMNS}
    base |= {"RESULT": [name] * n, "ROW": list(range(n)), "POPULATION": [lay.population] * n,
             "DATASET": [lay.dataset] * n, "GROUP1": [lay.group1 or None] * n, "GROUP2": [lay.group2 or None] * n,
             "PARAMCD": [_paramcd_of(name)] * n}
    for column in ("role", "filter", "method"):
        base[column.upper()] = [_resolve(getattr(lay, column), r, trial) for r in records]
    for column, target in lay.keys.items():
        base[target] = [None if pd.isna(v) else v if isinstance(v, str) else str(v) for v in table[column]]
    base["ANALYSIS_ID"] = [f"{name}:{a}" for a in base["ANALYSIS_ID"]] if lay.analysis else [name] * n
    out = {column: [v for v in values for _ in range(m)] for column, values in base.items()}
    cells = [_column_cells(table[c], _column_type(table[c].dtype)) for c in stat_columns]
    out["STAT"] = list(np.column_stack([c[0] for c in cells]).ravel()) if n and cells else []
    for i, column in ((1, "STAT_TEXT"), (2, "STAT_TYPE")):
        out[column] = [cell[i][r] for r in range(n) for cell in cells]
    out["STAT_NAME"] = (list(table[lay.long[0]]) if lay.long
                        else [lay.stats.get(c, c) for c in stat_columns] * n)
    return out


def build_ard(tables: dict[str, pd.DataFrame], trial: Trial) -> pd.DataFrame:
    """The ARD of the result tables, in the order given."""
    parts = [table_ard(name, table, trial) for name, table in tables.items()]
    out = pd.DataFrame({column: [v for part in parts for v in part[column]] for column in COLUMNS}, columns=COLUMNS)
    out["ROW"] = out["ROW"].astype(int)
    out["STAT"] = out["STAT"].astype(float)
    return out


def _typed(part: pd.DataFrame) -> pd.Series:
    """The values of ARD rows as the column they came from: integers (nullable where missing), reals, logicals,
    text, or a column of mixed values each of its own type."""
    stat, text, kinds = part["STAT"].astype(float), part["STAT_TEXT"], set(part["STAT_TYPE"].dropna())
    missing = stat.isna() & text.isna()
    if kinds == {"integer"}:
        return stat.astype("Int64" if missing.any() else "int64")
    if kinds <= {"integer", "real"}:
        return stat
    if kinds == {"logical"}:
        logical = text.map({"True": True, "False": False})
        return logical.astype("boolean" if missing.any() else bool)
    if kinds == {"text"}:
        return text.astype("str")
    by_kind = {"integer": lambda s, t: int(s), "real": lambda s, t: s, "logical": lambda s, t: t == "True",
               "text": lambda s, t: t}
    return pd.Series([np.nan if pd.isna(k) or (pd.isna(s) and pd.isna(t)) else by_kind[k](s, t)
                      for s, t, k in zip(stat, text, part["STAT_TYPE"])], index=part.index, dtype=object)


def result_table(ard: pd.DataFrame, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Result table ``name`` rebuilt from the ARD, each column of the type it had (its key columns, then its
    statistics in the ARD's order, or ``columns``)."""
    lay = layout(name)
    part = ard[ard["RESULT"] == name]
    if part.empty:
        return pd.DataFrame(columns=columns or list(lay.keys))
    first = part.drop_duplicates("ROW").set_index("ROW")
    out = pd.DataFrame(index=first.index)
    for column, target in lay.keys.items():
        values = first[target]
        if target == "ANALYSIS_ID":
            values = values.str.slice(len(name) + 1)
        if column in lay.integer_keys:
            values = pd.to_numeric(values)
            values = values.astype("Int64" if values.isna().any() else "int64")
        out[column] = values
    if lay.long:
        out[lay.long[0]] = part["STAT_NAME"].to_numpy()
        out[lay.long[1]] = _typed(part).set_axis(part["ROW"])
    else:
        own = part["STAT_NAME"].map({v: k for k, v in lay.stats.items()}).fillna(part["STAT_NAME"])
        for column, rows in part.groupby(own, sort=False):
            out[column] = _typed(rows).set_axis(rows["ROW"])
    out = out.reset_index(drop=True)
    return out[columns] if columns is not None else out


def ard_value(ard: pd.DataFrame, stat: str, **keys) -> float:
    """One number of the ARD: the row with STAT_NAME ``stat`` and the given key values (NaN when none)."""
    mask = ard["STAT_NAME"] == stat
    for column, value in keys.items():
        mask &= ard[column] == value
    found = ard.loc[mask, "STAT"]
    if len(found) > 1:
        raise ValueError(f"the ARD holds {len(found)} rows for {stat} with {keys}: name the row")
    return float(found.iloc[0]) if len(found) else np.nan


_INFINITY = {True: "Infinity", False: "-Infinity"}  # JSON has no infinite number (a tipping point beyond the grid)


def write_ard(ard: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """``ard.csv`` (numbers to 17 significant digits: they read back exactly; ``inf`` for an infinite value) and
    ``ard.json`` (the same rows as records; an infinite STAT as the string "Infinity" or "-Infinity") in
    ``folder``, each written whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_text = ard.to_csv(index=False, float_format="%.17g", lineterminator="\n")
    records = json.loads(ard.to_json(orient="records", double_precision=15))
    for r, stat in zip(records, ard["STAT"]):
        r["STAT"] = None if math.isnan(stat) else float(stat) if math.isfinite(stat) else _INFINITY[stat > 0]
    json_text = "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False, allow_nan=False) for r in records) + "\n]\n"
    paths = []
    for target, text in ((folder / "ard.csv", csv_text), (folder / "ard.json", json_text)):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
        paths.append(target)
    return paths[0], paths[1]


def read_ard(path: Path) -> pd.DataFrame:
    """An ARD written by ``write_ard`` (text columns as text, STAT as numbers)."""
    return pd.read_csv(path, dtype={c: "string" for c in COLUMNS if c not in ("ROW", "STAT")},
                       keep_default_na=False, na_values={"STAT": [""]}).replace({"": None})
