"""Read a site export (CSV or XLSX), validate it against the schema and the trial file, drop identifiers.

Every problem is collected (not only the first) and reported with file, row, column and rule.
Rows are numbered as a spreadsheet shows them: the header is row 1, the first record row 2.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .schema import Column, FileSpec, load_schema
from .trial import Trial

_INT = re.compile(r"^-?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None
    column: str | None
    rule: str
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message} [rule: {self.rule}]"


class ExportError(ValueError):
    """An export that breaks the contract; carries every problem found."""

    def __init__(self, folder: Path, problems: list[Problem]):
        self.folder, self.problems = folder, problems
        lines = [f"{folder}: {len(problems)} problem(s) in the export"] + [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass
class Export:
    """A validated export: typed tables without direct identifiers, plus non-fatal findings."""
    folder: Path
    tables: dict[str, pd.DataFrame]
    warnings: list[Problem] = field(default_factory=list)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def _find_file(folder: Path, name: str) -> Path | None:
    for ext in (".csv", ".xlsx"):
        if (folder / f"{name}{ext}").exists():
            return folder / f"{name}{ext}"
    return None


def read_raw(path: Path) -> pd.DataFrame:
    """A file as text cells, empty string for an empty cell, nothing converted yet."""
    if path.suffix == ".xlsx":
        df = pd.read_excel(path, dtype=str).fillna("")
        return df.apply(lambda s: s.str.replace(r" 00:00:00$", "", regex=True))
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _parse(kind: str, text: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Text cells converted to the column's type, and a mask of the cells that do not parse."""
    if kind == "integer":
        good = text.str.match(_INT)
        return pd.to_numeric(text.where(good & ~empty)).astype("Int64"), ~good & ~empty
    if kind == "number":
        typed = pd.to_numeric(text.where(~empty), errors="coerce").astype("Float64")
        return typed, typed.isna() & ~empty
    if kind == "date":
        typed = pd.to_datetime(text.where(~empty & text.str.match(_DATE)), format="%Y-%m-%d", errors="coerce")
        return typed, typed.isna() & ~empty
    return text.where(~empty, pd.NA), pd.Series(False, index=text.index)


def _check_column(fname: str, col: Column, values: pd.Series, frame: pd.DataFrame, trial: Trial):
    """Type, requiredness, allowed values and range for one column; returns (typed series, problems)."""
    problems = []
    text = values.str.strip()
    empty = text == ""
    required = pd.Series(col.required, index=text.index)
    if col.required_when:
        for k, v in col.required_when.items():
            required |= frame[k].str.strip() == v
    for i in text.index[empty & required]:
        problems.append(Problem(fname, i + 2, col.name, "required", "value is missing"))
    present = text[~empty]
    typed, bad = _parse(col.type, text, empty)
    for i in text.index[bad]:
        problems.append(Problem(fname, i + 2, col.name, "type", f"{text[i]!r} is not a valid {col.type}"))
    allowed = col.allowed_values(trial)
    if allowed is not None:
        for i in present.index[~present.isin(allowed)]:
            problems.append(Problem(fname, i + 2, col.name, "allowed",
                                    f"{present[i]!r} is not one of {{{', '.join(allowed)}}}"))
    if col.min is not None or col.max is not None:
        num = pd.to_numeric(typed, errors="coerce")
        lo = -float("inf") if col.min is None else col.min
        hi = float("inf") if col.max is None else col.max
        unit = f" {col.unit}" if col.unit and col.unit != "1" else ""
        for i in num.index[(num < lo) | (num > hi)]:
            problems.append(Problem(fname, i + 2, col.name, "range",
                                    f"{text[i]} is outside the plausible range [{col.min}, {col.max}]{unit}"))
    return typed, problems


def _check_file(path: Path, spec: FileSpec, trial: Trial):
    fname = path.name
    try:
        raw = read_raw(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
        return None, [Problem(fname, None, None, "readable", f"cannot be read: {exc}")]
    problems = [Problem(fname, 1, c, "columns", "required column is missing")
                for c in spec.column_names if c not in raw.columns]
    problems += [Problem(fname, 1, c, "columns", "column is not in the schema")
                 for c in raw.columns if c not in spec.column_names]
    if problems:
        return None, problems
    typed = {}
    for col in spec.columns:
        typed[col.name], found = _check_column(fname, col, raw[col.name], raw, trial)
        problems += found
    table = pd.DataFrame(typed, columns=spec.column_names)
    dup = raw.duplicated(list(spec.key), keep="first")
    for i in raw.index[dup]:
        key = ", ".join(f"{k}={raw.at[i, k]}" for k in spec.key)
        problems.append(Problem(fname, i + 2, ",".join(spec.key), "unique_key", f"duplicate record ({key})"))
    return table, problems


def _cross_checks(tables: dict[str, pd.DataFrame], names: dict[str, str]) -> tuple[list[Problem], list[Problem]]:
    """Rules across files: links between files and no data after death, transplant or withdrawal."""
    errors, warnings = [], []
    rand = tables["randomization"]
    subjects = set(rand["subject_id"].dropna())
    for i, sid in rand["screening_id"].items():
        if pd.notna(sid) and sid not in set(tables["screening"]["screening_id"]):
            errors.append(Problem(names["randomization"], i + 2, "screening_id", "foreign_key",
                                  f"{sid!r} is not in the screening log"))
    for name in ("infusion", "labs", "clinical", "events"):
        for i, sid in tables[name]["subject_id"].items():
            if pd.notna(sid) and sid not in subjects:
                errors.append(Problem(names[name], i + 2, "subject_id", "foreign_key",
                                      f"{sid!r} was never randomized"))
    ev = tables["events"]
    ends = ev[ev["event_type"].isin(["DEATH", "TRANSPLANT", "WITHDRAWAL"])]
    end_date = ends.groupby("subject_id")["start_date"].min()
    for name, date_col in (("labs", "lab_date"), ("clinical", "assessment_date")):
        t = tables[name]
        limit = t["subject_id"].map(end_date)
        for i in t.index[t[date_col] > limit]:
            errors.append(Problem(names[name], i + 2, date_col, "after_end_of_follow_up",
                                  f"{t.at[i, date_col].date()} is after the participant's death, transplant or "
                                  f"withdrawal ({limit[i].date()})"))
    deaths = ev[ev["event_type"] == "DEATH"]
    for i in deaths.index[deaths["subject_id"].duplicated()]:
        errors.append(Problem(names["events"], i + 2, "event_type", "one_death", "second DEATH record"))
    return errors, warnings


def _visit_window_warnings(tables, trial: Trial, names) -> list[Problem]:
    """Visits outside their protocol window: protocol deviations to report, not errors."""
    first = tables["infusion"].groupby("subject_id")["infusion_date"].min()
    out = []
    for name, date_col in (("labs", "lab_date"), ("clinical", "assessment_date")):
        t = tables[name]
        day = (t[date_col] - t["subject_id"].map(first)).dt.days + 1
        for i in t.index:
            if pd.isna(day[i]) or pd.isna(t.at[i, "visit"]):
                continue
            lo, hi = trial.visit(t.at[i, "visit"]).window
            if not lo <= day[i] <= hi:
                out.append(Problem(names[name], i + 2, date_col, "visit_window",
                                   f"study day {int(day[i])} outside the {t.at[i, 'visit']} window [{lo}, {hi}]"))
    return out


def validate_export(folder: str | Path, trial: Trial) -> tuple[dict[str, pd.DataFrame], list[Problem], list[Problem]]:
    """Typed tables (identifiers still in), errors and warnings for an export folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}, [Problem(str(folder), None, None, "folder", "export folder not found")], []
    tables, problems, names = {}, [], {}
    for name, spec in load_schema().items():
        path = _find_file(folder, name)
        if path is None:
            problems.append(Problem(f"{name}.csv", None, None, "missing_file", "file not found (.csv or .xlsx)"))
            continue
        names[name] = path.name
        table, found = _check_file(path, spec, trial)
        problems += found
        if table is not None:
            tables[name] = table
    warnings = []
    if not problems:
        problems, warnings = _cross_checks(tables, names)
        warnings += _visit_window_warnings(tables, trial, names)
    return tables, problems, warnings


def drop_identifiers(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables without the schema's direct identifiers (names, phones, ID numbers, birth dates)."""
    schema = load_schema()
    return {name: t.drop(columns=schema[name].identifiers) for name, t in tables.items()}


def age_at(birth: pd.Series, on: pd.Series) -> pd.Series:
    """Age in completed years on a date."""
    had_birthday = (on.dt.month > birth.dt.month) | ((on.dt.month == birth.dt.month) & (on.dt.day >= birth.dt.day))
    return (on.dt.year - birth.dt.year - (~had_birthday).astype(int)).astype("Int64")


def load_export(folder: str | Path, trial: Trial) -> Export:
    """Validated export with AGE derived and direct identifiers dropped; raises ExportError listing every problem."""
    tables, problems, warnings = validate_export(folder, trial)
    if problems:
        raise ExportError(Path(folder), problems)
    scr = tables["screening"]
    scr.insert(scr.columns.get_loc("sex"), "age", age_at(scr["birth_date"], scr["screening_date"]))
    return Export(Path(folder), drop_identifiers(tables), warnings)
