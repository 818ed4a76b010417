"""Read a site export (CSV, XLSX, SAS or SPSS files; through its export mapping, if any), validate it against the contract and the trial file, drop identifiers.

Every problem is collected (not only the first) and reported with file, row, column and rule.
Rows are numbered as a spreadsheet shows them: the header is row 1, the first record row 2.
Errors (impossible values, broken keys, dates in the wrong order, a missing file the trial needs)
stop the build; warnings (unusual values, visits outside their window, unscheduled or repeated
samples, extra columns, records after the data cut-off) are listed and the data are used.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data.privacy import identifier_values, identifiers_in_text
from helpers.data.reading import SUFFIXES, Problem, ReadError, read_raw  # noqa: F401 - the loader's public names
from helpers.data.schema import UNSCHEDULED, Column, FileSpec, export_spec, missing_codes
from helpers.trial import LabTest, Trial, study_day, unit_key

_INT = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"\d+")
_LEADING_ZEROS = re.compile(r"(?<![0-9])0+(?=[0-9])")
# A time of day after a date (24 h or AM/PM, seconds, fraction, zone) is accepted and dropped.
_TIME = (r"(?:(?:T|\s+)(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
         r"(?:\s*[AaPp]\.?[Mm]\.?)?(?:\s*(?:Z|[+-]\d\d:?\d\d))?)?")
_DATE = re.compile(rf"^(\d{{4}})[-/.](\d{{1,2}})[-/.](\d{{1,2}}){_TIME}$")
_DATE_DMY = re.compile(rf"^(\d{{1,2}})[-/.](\d{{1,2}})[-/.](\d{{4}}){_TIME}$")
_CENSORED = re.compile(r"^([<>])\s*=?\s*([+-]?\d+(?:\.\d*)?|\.\d+)$")
# Companion columns the loader adds beside each lab test column of labs.csv.
REASON, CENS, REPORTED = "__reason", "__cens", "__reported"


def _trial_name(trial: Trial) -> str:
    return str(trial.source) if trial.source else trial.id


class ExportError(ValueError):
    """An export that breaks the contract; carries every error found, summarized by rule."""

    def __init__(self, folder: Path, problems: list[Problem], trial: Trial | None = None, shown: int = 30):
        self.folder, self.problems = folder, problems
        head = f"{folder}: {len(problems)} error(s) in the export (trial file {_trial_name(trial)})" if trial \
            else f"{folder}: {len(problems)} error(s) in the export"
        lines = [head, summary_text(problems)]
        lines += [f"  {p}" for p in problems[:shown]]
        if len(problems) > shown:
            lines.append(f"  ... and {len(problems) - shown} more (the full list: _build/validation/problems.csv)")
        super().__init__("\n".join(lines))


@dataclass
class Export:
    """A validated export: typed tables without direct identifiers, plus non-fatal findings.

    Tables the trial does not have (an optional file absent or empty) are present with no rows.
    In ``labs``, each test column ``x`` (in the panel's unit) comes with ``x__reason`` (why it is
    missing), ``x__cens`` ("<" or ">" for a result beyond a limit) and ``x__reported`` (the text
    and unit as reported, where it was converted or censored).
    """
    folder: Path
    tables: dict[str, pd.DataFrame]
    warnings: list[Problem] = field(default_factory=list)
    trial: Trial | None = None

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


# --- reading ---------------------------------------------------------------------------------------

def _find_file(folder: Path, name: str) -> tuple[Path | None, Problem | None]:
    found = [folder / f"{name}{ext}" for ext in SUFFIXES if (folder / f"{name}{ext}").exists()]
    if len(found) > 1:
        return None, Problem(f"{name}.csv", None, None, "one_file_per_table",
                             f"{' and '.join(p.name for p in found)} are present: keep one")
    return (found[0] if found else None), None


# --- cells --------------------------------------------------------------------------------------

def _by_distinct(rule, values: pd.Series) -> pd.Series:
    """``rule`` (a function of a Series, value by value) computed once for each distinct value and spread to every
    row: the same result, with each repeated text (a visit, a date, a category) handled once."""
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    out = rule(pd.Series(distinct, dtype=values.dtype, name=values.name))
    return out.take(codes).set_axis(values.index)


def _date_order(texts: list[pd.Series]) -> str | None:
    """Which comes first in a file's dates written DD/MM/YYYY or MM/DD/YYYY: "day" or "month" where a
    number above 12 stands in one place only, "both" where it stands in both, None where none does."""
    parts = pd.concat([pd.Series(t.unique(), dtype=t.dtype).str.strip().str.extract(_DATE_DMY) for t in texts]) \
        if texts else pd.DataFrame(columns=[0, 1])
    first, second = (pd.to_numeric(parts[0]) > 12).any(), (pd.to_numeric(parts[1]) > 12).any()
    return {(True, False): "day", (False, True): "month", (True, True): "both"}.get((first, second))


def _parse_dates(text: pd.Series, order: str | None = None) -> pd.Series:
    """Dates YYYY-MM-DD (or with / or .), and DD/MM/YYYY or MM/DD/YYYY by ``order`` ("day" or "month"
    first); a time of day is dropped."""
    ymd, dmy = text.str.extract(_DATE), text.str.extract(_DATE_DMY)
    day, month = {"day": (dmy[0], dmy[1]), "month": (dmy[1], dmy[0])}.get(order, (ymd[2], ymd[1]))
    iso = ymd[0].fillna(dmy[2]) + "-" + ymd[1].fillna(month).str.zfill(2) + "-" + ymd[2].fillna(day).str.zfill(2)
    return pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce")


def _parse(kind: str, text: pd.Series, empty: pd.Series, order: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Text cells converted to the column's type, and a mask of the cells that do not parse
    (``order``: which comes first in day/month dates, see ``_date_order``)."""
    if kind == "integer":
        good = text.str.match(_INT)
        typed = pd.to_numeric(text.where(good & ~empty), errors="coerce")
        too_big = typed.abs() > 2 ** 53
        return typed.where(~too_big).astype("Int64"), (~good | too_big) & ~empty
    if kind == "number":
        typed = pd.to_numeric(text.where(~empty), errors="coerce").astype("Float64")
        return typed, typed.isna() & ~empty
    if kind == "date":
        typed = _by_distinct(lambda t: _parse_dates(t, order), text.where(~empty, ""))
        return typed, typed.isna() & ~empty
    return text.where(~empty, pd.NA), pd.Series(False, index=text.index)


def _missing_reasons(text: pd.Series) -> pd.Series:
    """The reason a cell records a missing value (a code of the contract), else NA."""
    return _by_distinct(lambda t: t.str.upper().map(missing_codes()).astype("object"), text)


def _range_problems(fname, name, num, text, lo, hi, unit, rule, what, shown=None) -> list[Problem]:
    lo = -np.inf if lo is None else lo
    hi = np.inf if hi is None else hi
    bad = num.index[((num < lo) | (num > hi)).fillna(False).astype(bool)]
    unit = f" {unit}" if unit and unit != "1" else ""
    return [Problem(fname, i + 2, name, rule, f"{(shown if shown is not None else text)[i]} is outside the {what} "
                    f"[{lo:g}, {hi:g}]{unit}") for i in bad]


def _check_column(fname: str, col: Column, spec: FileSpec, raw: pd.DataFrame, trial: Trial,
                  date_order: str | None = None):
    """Type, requiredness, allowed values and range for one column; returns (typed, companions, errors, warnings).
    ``date_order``: the file's ``_date_order`` (read by date columns)."""
    errors, warnings, extra = [], [], {}
    text = _by_distinct(lambda t: t.str.strip(), raw[col.name]) if col.name in raw else pd.Series("", index=raw.index)
    is_key = col.name in spec.key
    unit_of = _unit_column_test(col, spec, trial)
    empty = text == ""
    reason = pd.Series(pd.NA, index=text.index, dtype="object")
    codes = not is_key and not col.required and unit_of is None
    if codes:
        reason = _missing_reasons(text)
        empty = empty | reason.notna()
    # A date in a key tells repeated samples apart; an undated sample is still a record.
    required = pd.Series((is_key and col.type != "date") or col.required, index=text.index)
    if col.required_when:
        for k, v in col.required_when.items():
            required |= raw[k].str.strip() == v
    for i in text.index[(text == "") & required]:
        errors.append(Problem(fname, i + 2, col.name, "required", "value is missing"))
    cens = pd.Series(pd.NA, index=text.index, dtype="object")
    parse_text = text
    if col.type == "number" and spec.name == "labs":
        m = _by_distinct(lambda t: t.str.extract(_CENSORED), text)
        cens = m[0].where(m[0].notna(), pd.NA).astype("object")
        parse_text = m[1].where(m[1].notna(), text)
    order = date_order if col.type == "date" else None
    typed, bad = _parse(col.type, parse_text, empty, order)
    for i in text.index[bad]:
        errors.append(Problem(fname, i + 2, col.name, "type",
                              _type_message(text[i], col.type, order, codes, spec.name == "labs")))
    allowed = col.allowed_values(trial)
    if allowed is not None:
        present = text[~empty]
        if unit_of is not None:
            spelled = {unit_key(u): u for u in unit_of.factors}
            typed = present.map(unit_key).map(spelled).reindex(text.index)
            ok = typed[~empty].notna()
        else:
            ok = present.isin(allowed)
            typed = typed.where(typed.isin(allowed), pd.NA) if col.type in ("category", "flag") else typed
        also = f" (or empty, or a missing-value code: {', '.join(missing_codes())})" if codes else " (or empty)"
        for i in present.index[~ok]:
            errors.append(Problem(fname, i + 2, col.name, "allowed",
                                  f"{present[i]!r} is not one of {{{', '.join(allowed)}}}{also}"))
    if spec.name == "labs" and col.name in [t.column for t in trial.lab_panel]:
        typed, reported, errs, warns = _lab_values(fname, col, trial, raw, text, typed, cens)
        errors += errs
        warnings += warns
        extra = {col.name + REASON: reason.where(reason.notna(), pd.NA), col.name + CENS: cens,
                 col.name + REPORTED: reported}
    elif col.min is not None or col.max is not None:
        num = pd.to_numeric(typed, errors="coerce")
        errors += _range_problems(fname, col.name, num, text, col.min, col.max, col.unit, "range", "possible range")
    return typed, extra, errors, warnings


def _unit_column_test(col: Column, spec: FileSpec, trial: Trial) -> LabTest | None:
    """The lab test whose unit a column of labs.csv names (``<test>_unit``), else None."""
    if spec.name != "labs":
        return None
    return next((t for t in trial.lab_panel if col.name == f"{t.column}_unit"), None)


def _codes_text() -> str:
    """The missing-value codes with their reasons, codes of one reason together."""
    by_reason: dict[str, list[str]] = {}
    for code, why in missing_codes().items():
        by_reason.setdefault(why, []).append(code)
    return ", ".join(f"{' or '.join(codes)} ({why})" for why, codes in by_reason.items())


def _type_message(cell: str, kind: str, order: str | None, codes: bool, lab: bool) -> str:
    """Why a cell is not a valid value of its type, and what is accepted."""
    if kind == "date" and _DATE_DMY.match(cell) and order in (None, "both"):
        why = "no date of the file has a number above 12 first or second" if order is None \
            else "the file's dates have a number above 12 first in some, second in others"
        return f"{cell!r} is not a valid date: day and month cannot be told apart ({why}); write YYYY-MM-DD"
    if kind != "date" and not codes and not (kind == "number" and lab):
        return f"{cell!r} is not a valid {kind}"
    forms = {"date": "YYYY-MM-DD (or / or .), or DD/MM/YYYY or MM/DD/YYYY where the file shows which comes first, "
                     "a time of day may follow",
             "number": "a number" + (", or a result beyond a limit (<L or >U)" if lab else ""),
             "integer": "a whole number"}
    accepted = forms.get(kind, kind) + (f"; or a missing-value code: {_codes_text()}" if codes else "")
    return f"{cell!r} is not a valid {kind} (accepted: {accepted})"


def _lab_values(fname, col, trial, raw, text, typed, cens):
    """A lab test's values in the panel's unit (converted by the row's unit column), checked against the
    impossible limits (errors) and the expected range (warnings)."""
    test = next(t for t in trial.lab_panel if t.column == col.name)
    errors, warnings = [], []
    unit_col = f"{col.name}_unit"
    reported = pd.Series(pd.NA, index=text.index, dtype="object")
    value = typed.astype("Float64")
    shown = text.copy()
    if unit_col in raw:
        units = raw[unit_col].str.strip()
        factor = units.map(test.factor).astype(float)
        converted = value.notna() & factor.notna() & (factor != 1.0)
        reported = reported.mask(converted, text + " " + units)
        value = value * factor.astype("Float64")
        for i in units.index[converted]:
            warnings.append(Problem(fname, i + 2, col.name, "unit_converted",
                                    f"{text[i]} {units[i]} converted to {value[i]:.4g} {test.unit}"))
        in_panel_unit = value.map(lambda v: "" if pd.isna(v) else f" ({v:.4g} {test.unit})")
        shown = shown.mask(converted, text + " " + units + in_panel_unit)
    reported = reported.mask(cens.notna() & reported.isna(), text)
    errors += _range_problems(fname, col.name, value, text, *test.impossible, test.unit, "impossible",
                              "possible range", shown)
    if test.expected:
        ok = (value >= test.impossible[0]) & (value <= test.impossible[1])
        warnings += _range_problems(fname, col.name, value.where(ok), text, *test.expected, test.unit,
                                    "expected_range", "expected range (check the value)", shown)
    return value, reported, errors, warnings


def _normalize_keys(raw: pd.DataFrame, spec: FileSpec) -> pd.DataFrame:
    """Key columns trimmed; the comparison form (case-folded) is used for uniqueness and links."""
    out = raw.copy()
    for k in spec.key:
        if k in out:
            out[k] = out[k].str.strip()
    return out


def _unpadded(text: str) -> str:
    """Numbers in ``text`` without their leading zeros, as ``int`` writes them (other scripts' digits too)."""
    if text.isascii():
        return _LEADING_ZEROS.sub("", text)
    return _NUMBER.sub(lambda m: str(int(m.group())), text)


def key_form(values: pd.Series) -> pd.Series:
    """How keys are compared: whitespace trimmed, letter case and zero padding of numbers ignored
    ("01-005 ", "1-5" and "01-005" are one participant)."""
    codes, distinct = pd.factorize(values.astype("string"))
    forms = np.array([_unpadded(v.strip().casefold()) for v in np.asarray(distinct, dtype=object)] + [pd.NA],
                     dtype=object)
    return pd.Series(forms[codes], index=values.index, dtype="string", name=values.name)


def _canonical_keys(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every participant key written as the randomization log writes it (and screening numbers as the
    screening log does), so that tables join whatever spelling the site used in each file."""
    def spelled(keys: pd.Series, reference: pd.Series) -> pd.Series:
        canon = pd.Series(reference.to_numpy(), index=key_form(reference).to_numpy())
        canon = canon[~canon.index.duplicated()]
        return key_form(keys).map(canon).fillna(keys)

    out = dict(tables)
    rand = tables.get("randomization")
    if rand is None:
        return out
    if "screening" in tables:
        out["randomization"] = rand.assign(screening_id=spelled(rand["screening_id"], tables["screening"]["screening_id"]))
    for name in ("dosing", "labs", "clinical", "events"):
        if name in tables:
            out[name] = tables[name].assign(subject_id=spelled(tables[name]["subject_id"], rand["subject_id"]))
    return out


def _check_file(path: Path, spec: FileSpec, trial: Trial):
    """One file's typed table, errors and warnings. The table is None (absent for the rules across files) when
    the file cannot be read, is empty but needed, or lacks a required column."""
    fname = path.name
    read_warnings, read_errors = [], []
    try:
        raw = read_raw(path, read_warnings, read_errors)
    except ReadError as exc:
        return None, [exc.problem], read_warnings
    except Exception as exc:  # noqa: BLE001 - any other unreadable file is reported, not raised
        return None, [Problem(fname, None, None, "readable", f"cannot be read: {exc}")], read_warnings
    return _check_table(fname, raw, spec, trial, read_errors, read_warnings)


def _check_table(fname: str, raw: pd.DataFrame, spec: FileSpec, trial: Trial, read_errors: list[Problem],
                 read_warnings: list[Problem]):
    """A table of text cells (as read, or as the export mapping made it) checked against its contract file."""
    if raw.shape[1] == 0:
        needed = [] if spec.optional else [Problem(fname, None, None, "missing_file",
                                                   "the file is empty and the trial needs it")]
        return (None if needed else _empty(spec)), read_errors + needed, read_warnings
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [Problem(fname, 1, c.name, "columns", "required column is missing")
               for c in spec.columns if c.name not in raw.columns and not c.optional_column]
    warnings = read_warnings + [Problem(fname, 1, c, "extra_column", "column is not in the contract: kept out of the analysis")
                                for c in raw.columns if c not in spec.column_names]
    if missing:
        return None, read_errors + missing, warnings
    errors = list(read_errors)
    raw = _normalize_keys(raw, spec)
    typed = {}
    dates = [raw[c.name] for c in spec.columns if c.type == "date" and c.name in raw]
    order = _date_order(dates) if dates else None
    for col in spec.columns:
        typed[col.name], extra, errs, warns = _check_column(fname, col, spec, raw, trial, order)
        typed.update(extra)
        errors += errs
        warnings += warns
    table = pd.DataFrame(typed, index=raw.index)
    folded = pd.DataFrame({k: key_form(raw[k]) for k in spec.key})
    if spec.name in ("labs", "clinical"):
        date_col = spec.key[-1]
        folded[date_col] = table[date_col].dt.strftime("%Y-%m-%d").fillna(folded[date_col])
    dup = folded.duplicated(keep="first")
    for i in raw.index[dup]:
        key = ", ".join(f"{k}={raw.at[i, k]!r}" for k in spec.key)
        errors.append(Problem(fname, i + 2, ",".join(spec.key), "unique_key",
                              f"duplicate record ({key}; whitespace and letter case are ignored)"))
    return table, errors, warnings


def _empty(spec: FileSpec) -> pd.DataFrame:
    dtypes = {"date": "datetime64[ns]", "integer": "Int64", "number": "Float64"}
    return pd.DataFrame({c.name: pd.Series(dtype=dtypes.get(c.type, "object")) for c in spec.columns})


# --- rules across files -------------------------------------------------------------------------

def first_doses(dosing: pd.DataFrame) -> pd.DataFrame:
    """Each participant's first dose record (indexed by subject_id): the earliest date, then the lowest
    number. The one definition of "first dose" (study day 1, arm received, CONSORT, chronology)."""
    keys = [k for k in ("subject_id", "dose_date", "dose_no") if k in dosing]
    ordered = dosing.sort_values(keys, na_position="last")
    return ordered.drop_duplicates("subject_id").set_index("subject_id")


def treatment_start(tables: dict[str, pd.DataFrame], trial: Trial) -> pd.Series:
    """First exposure per participant (subject_id -> date; ADSL TRTSDT): the first dose record, or the
    randomization date when the trial's day 1 is randomization (``Trial.has_dosing_file``)."""
    rand = tables["randomization"].set_index("subject_id")["rand_date"]
    if not trial.has_dosing_file:
        return rand
    return first_doses(tables["dosing"])["dose_date"]


def _at(keys: pd.Series, table: pd.Series) -> pd.Series:
    """Values of ``table`` (indexed by key) at ``keys``; safe when ``table`` is empty or repeats a key (a
    duplicate record, reported by its file's checks: the first one counts)."""
    table = table[~table.index.duplicated()]
    return pd.Series(table.reindex(keys.to_numpy()).to_numpy(), index=keys.index, dtype=table.dtype)


def _needs(*names: str):
    """Declare the tables a rule across files reads: ``validate_export`` skips it when one is absent (unreadable,
    or without a required column: that file's error is reported). Tables the rule merely uses if present are not
    declared."""
    def mark(rule):
        rule.needs = names
        return rule
    return mark


def _failed_in(failed: frozenset, fname: str, *columns: str) -> bool:
    """Some cell of these columns of a file failed its check (``failed``: (file, row, column))."""
    return any(f == fname and c in columns for f, _, c in failed)


@_needs("randomization")
def _links(tables: dict[str, pd.DataFrame], names: dict[str, str]) -> list[Problem]:
    """Links between files: a randomized screening number is in the screening log, every other file's participant
    was randomized. An empty key is reported by its file's checks (required), not here."""
    errors = []
    rand = tables["randomization"]
    if "screening" in tables:
        screened = set(key_form(tables["screening"]["screening_id"]))
        unknown = rand["screening_id"].notna() & ~key_form(rand["screening_id"]).isin(screened)
        for i, sid in rand["screening_id"][unknown.fillna(False).astype(bool)].items():
            errors.append(Problem(names["randomization"], i + 2, "screening_id", "foreign_key",
                                  f"{sid!r} is not in the screening log"))
    subjects = set(key_form(rand["subject_id"]))
    for name in ("dosing", "labs", "clinical", "events"):
        if name not in tables:
            continue
        t = tables[name]
        for i in t.index[t["subject_id"].notna() & ~key_form(t["subject_id"]).isin(subjects)]:
            errors.append(Problem(names.get(name, f"{name}.csv"), i + 2, "subject_id", "foreign_key",
                                  f"{t.at[i, 'subject_id']!r} was never randomized"))
    return errors


@_needs("events")
def _event_dates(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial) -> list[Problem]:
    """Events in order: an adverse event ends after it starts, one death, nothing after death; nothing in labs or
    clinical (where present) after an early end of follow-up (death, an intercurrent event, withdrawal:
    ``Trial.early_end_codes``); no end of follow-up before randomization (where the randomization log is present)."""
    errors = []
    ev = tables["events"]
    events = names.get("events", "events.csv")
    ae_end = ev["end_date"] < ev["start_date"]
    for i in ev.index[ae_end.fillna(False).astype(bool)]:
        errors.append(Problem(events, i + 2, "end_date", "date_order",
                              f"ends ({ev.at[i, 'end_date'].date()}) before it starts ({ev.at[i, 'start_date'].date()})"))
    ends = ev[ev["event_type"].isin(trial.early_end_codes)].sort_values("start_date", kind="stable")
    first_end = ends.drop_duplicates("subject_id").set_index("subject_id")
    end_date = first_end["start_date"]
    for name, date_col in (("labs", "lab_date"), ("clinical", "assessment_date")):
        if name not in tables:
            continue
        t = tables[name]
        limit = _at(t["subject_id"], end_date)
        why = _at(t["subject_id"], first_end["event_type"])
        for i in t.index[(t[date_col] > limit).fillna(False).astype(bool)]:
            errors.append(Problem(names.get(name, f"{name}.csv"), i + 2, date_col, "after_end_of_follow_up",
                                  f"{t.at[i, date_col].date()} is after the end of the participant's follow-up "
                                  f"({trial.event_label(why[i]).lower()}, {limit[i].date()})"))
    deaths = ev[ev["event_type"] == "DEATH"]
    for i in deaths.index[deaths["subject_id"].notna() & deaths["subject_id"].duplicated()]:
        errors.append(Problem(events, i + 2, "event_type", "one_death", "second DEATH record"))
    death_date = _at(ev["subject_id"], deaths.groupby("subject_id")["start_date"].min())
    for i in ev.index[((ev["start_date"] > death_date) & ev["event_type"].ne("DEATH")).fillna(False).astype(bool)]:
        kind = "an event" if pd.isna(ev.at[i, "event_type"]) else ev.at[i, "event_type"]
        errors.append(Problem(events, i + 2, "start_date", "after_death",
                              f"{kind} on {ev.at[i, 'start_date'].date()}, after the participant's "
                              f"death ({death_date[i].date()})"))
    if "randomization" not in tables:
        return errors
    rand_date = _at(ev["subject_id"], tables["randomization"].set_index("subject_id")["rand_date"])
    ending = ev["event_type"].isin(trial.end_of_follow_up_codes)
    for i in ev.index[(ending & (ev["start_date"] < rand_date)).fillna(False).astype(bool)]:
        errors.append(Problem(events, i + 2, "start_date", "date_order",
                              f"{ev.at[i, 'event_type']} on {ev.at[i, 'start_date'].date()}, before randomization "
                              f"({rand_date[i].date()}): survival time would be negative"))
    return errors


@_needs()
def _plausibility(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial,
                  export_date: dt.date) -> tuple[list[Problem], list[Problem]]:
    """Dates after the export date, impossible ages derived from the birth date (errors; an age column outside
    [0, 120] is its file's range error); randomized participants outside the protocol's age bounds (warnings:
    protocol deviations)."""
    errors, warnings = [], []
    limit = pd.Timestamp(export_date)
    for name, spec in export_spec(trial).items():
        t = tables.get(name)
        for col in (c.name for c in spec.columns if c.type == "date"):
            if t is None or col not in t:
                continue
            for i in t.index[(t[col] > limit).fillna(False).astype(bool)]:
                errors.append(Problem(names.get(name, f"{name}.csv"), i + 2, col, "future_date",
                                      f"{t.at[i, col].date()} is after the export date ({export_date}): a typing error?"))
    scr = tables.get("screening")
    if scr is None:
        return errors, warnings
    age = derive_age(scr)
    given = scr["age"].notna() if "age" in scr else pd.Series(False, index=scr.index)
    impossible = ((age < 0) | (age > 120)).fillna(False).astype(bool)
    for i in scr.index[impossible & ~given]:
        errors.append(Problem(names["screening"], i + 2, "birth_date", "impossible", f"age {age[i]} years at screening"))
    if trial.age_range and "randomization" in tables:
        randomized = _randomized(tables) & ~impossible
        lo, hi = trial.age_range
        for i in scr.index[randomized & ((age < lo) | (age > hi)).fillna(False).astype(bool)]:
            warnings.append(Problem(names["screening"], i + 2, "age", "eligibility",
                                    f"randomized at age {age[i]}, outside the protocol's {lo} to {hi} years"))
    return errors, warnings


def _randomized(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Which rows of the screening log were randomized."""
    return key_form(tables["screening"]["screening_id"]).isin(set(key_form(tables["randomization"]["screening_id"])))


@_needs("randomization")
def _randomized_twice(tables: dict[str, pd.DataFrame], names: dict[str, str]) -> list[Problem]:
    """One person randomized twice: a screening number twice in the randomization log, or two randomized
    screening numbers with one ID number, or with one name and birth date (space and case ignored). A record
    repeated under its own key (its file's unique_key error) is not a second randomization."""
    errors = []
    rand, scr = tables["randomization"], tables.get("screening")
    sids = key_form(rand["screening_id"])
    repeated = pd.DataFrame({"s": sids, "p": key_form(rand["subject_id"])}).duplicated()
    for i in rand.index[sids.notna() & sids.duplicated(keep="first") & ~repeated]:
        first = rand.index[sids == sids[i]][0]
        errors.append(Problem(names["randomization"], i + 2, "screening_id", "randomized_twice",
                              f"screening number {rand.at[i, 'screening_id']} was randomized on row {first + 2} "
                              f"({rand.at[first, 'subject_id']}) and again here ({rand.at[i, 'subject_id']})"))
    if scr is None:
        return errors
    identities, what = {}, {"id_number": "ID number", "name": "name and birth date"}
    if "id_number" in scr:
        identities["id_number"] = scr["id_number"].astype("string").str.replace(r"[^0-9A-Za-z]", "", regex=True).str.upper()
    if "name" in scr and "birth_date" in scr:
        name = scr["name"].astype("string").str.replace(r"\s+", "", regex=True).str.casefold()
        identities["name"] = name + "|" + scr["birth_date"].dt.strftime("%Y-%m-%d").astype("string")
    randomized, reported = _randomized(tables) & ~key_form(scr["screening_id"]).duplicated(), set()
    for column, key in identities.items():
        key = key.where((randomized & key.notna() & (key != "") & ~key.str.startswith("|")).fillna(False).astype(bool))
        for i in scr.index[key.notna() & key.duplicated(keep="first")]:
            first = scr.index[key == key[i]][0]
            if (first, i) not in reported:
                reported.add((first, i))
                errors.append(Problem(names["screening"], i + 2, column, "randomized_twice",
                                      f"the same person (same {what[column]}) as row {first + 2}, randomized under two "
                                      "screening numbers"))
    return errors


@_needs("screening", "randomization")
def _consent(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial,
             failed: frozenset = frozenset()) -> list[Problem]:
    """Every randomized participant gave informed consent: the screening log's consent flag is Y. A flag already
    reported (a value not allowed: ``failed`` cells, as (file, row, column)) is not reported again."""
    scr, rand = tables["screening"], tables["randomization"]
    subject = pd.Series(rand["subject_id"].to_numpy(), index=key_form(rand["screening_id"]).to_numpy())
    subject = subject[~subject.index.duplicated()]
    screening_key = key_form(scr["screening_id"])
    errors = []
    for c in (c for c in trial.eligibility if c.consent and c.column in scr):
        for i in scr.index[_randomized(tables) & ~scr[c.column].eq("Y").fillna(False).astype(bool)]:
            if (names["screening"], i + 2, c.column) in failed:
                continue
            value = "empty" if pd.isna(scr.at[i, c.column]) else f"= {scr.at[i, c.column]}"
            errors.append(Problem(names["screening"], i + 2, c.column, "randomized_without_consent",
                                  f"randomized as {subject.get(screening_key[i], '?')} with {c.column} {value}: "
                                  f"{c.label.lower()} is needed before randomization"))
    return errors


@_needs("events")
def _adverse_event_collection(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial,
                              failed: frozenset = frozenset()) -> list[Problem]:
    """Adverse events as the trial file declares them collected or not: none at all when collected, or some when
    not collected, is worth a look (warnings). "None at all" is not said when an event type failed its check
    (``failed`` cells): it may be an adverse event."""
    events = names.get("events", "events.csv")
    ae = tables["events"].index[tables["events"]["event_type"].eq("AE").fillna(False).astype(bool)]
    if trial.adverse_events_collected and not len(ae) and not _failed_in(failed, events, "event_type"):
        return [Problem(events, None, "event_type", "no_adverse_events",
                        "no adverse event (event_type AE): the safety chapter counts none; if the trial did not collect "
                        "adverse events, say so in the trial file (safety: {adverse_events_collected: false})")]
    if not trial.adverse_events_collected and len(ae):
        return [Problem(events, int(ae[0]) + 2, "event_type", "adverse_events_not_collected",
                        f"{len(ae)} adverse event row(s), but the trial file says adverse events were not collected "
                        "(safety.adverse_events_collected: false): they are kept out of the safety tables")]
    return []


@_needs("randomization", "events")
def _follow_up_ends(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial,
                    failed: frozenset = frozenset()) -> list[Problem]:
    """In a final analysis (no cut-off) every randomized participant's follow-up ends in the events file: death,
    an intercurrent event, withdrawal or completion (``Trial.end_of_follow_up_codes``). At an interim look a participant without one is ongoing. A participant
    with an event whose type failed its check (``failed`` cells) may have one: not reported; an event without
    a participant could be anyone's: the rule is skipped."""
    if trial.cutoff is not None:
        return []
    rand, ev = tables["randomization"], tables["events"]
    events = names.get("events", "events.csv")
    if _failed_in(failed, events, "subject_id"):
        return []
    unknown = ev.index.map(lambda i: (events, i + 2, "event_type") in failed).to_numpy(dtype=bool)
    ended = set(key_form(ev.loc[ev["event_type"].isin(trial.end_of_follow_up_codes) | unknown, "subject_id"]))
    missing = rand.index[~key_form(rand["subject_id"]).isin(ended)]
    if len(missing) and len(missing) == len(rand):
        return [Problem(events, None, "event_type", "no_end_of_follow_up",
                        f"{events} has no end of follow-up for any of the {len(rand)} randomized participants: "
                        f"a final analysis needs one per participant ({', '.join(trial.end_of_follow_up_codes)}); "
                        "for an interim look give a cut-off")]
    return [Problem(names["randomization"], i + 2, "subject_id", "no_end_of_follow_up",
                    f"{rand.at[i, 'subject_id']} has no end of follow-up in {events} ({', '.join(trial.end_of_follow_up_codes)}): "
                    "a final analysis needs one per participant; for an interim look give a cut-off")
            for i in missing]


@_needs("randomization")
def _cutoff_before_randomization(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial) -> list[Problem]:
    """A data cut-off before the first randomization leaves nobody to analyse."""
    first = tables["randomization"]["rand_date"].min()
    if trial.cutoff is None or pd.isna(first) or first <= pd.Timestamp(trial.cutoff):
        return []
    return [Problem(names.get("randomization", "randomization.csv"), None, "rand_date", "cutoff_before_randomization",
                    f"the data cut-off {trial.cutoff} is before the first randomization ({first.date()}): nobody "
                    "would be analysed; check the cut-off (--cutoff or CUTOFF=, else the trial file's cutoff)")]


# A value is taken for another unit when, converted, it lies within this factor of the values measured just
# before and after it (e.g. a factor of 17.1 or 88.4 from mg/dL). Neighbours in time, not the whole follow-up: in progressive disease
# a value can rise 40-fold over years, never by a unit's factor from one visit to the next.
UNIT_MIXUP_TOLERANCE = 2.5


def _neighbours(dates: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For values sorted by participant (``groups``, a label per value) and date: the positions of the two values
    of the same participant measured nearest in time to each, the nearest first: the one before and the one after,
    or at either end the two nearest on its only side; -1 where there is none (a participant with one value has
    neither)."""
    n = len(groups)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if n else np.array([], dtype=int)
    sizes = np.diff(np.r_[starts, n])
    size = np.repeat(sizes, sizes)
    pos = np.arange(n) - np.repeat(starts, sizes)
    i = np.arange(n)
    first, last = pos == 0, pos == size - 1
    inner = ~first & ~last
    before = dates[i] - dates[np.maximum(i - 1, 0)]
    after = dates[np.minimum(i + 1, n - 1)] - dates[i]
    earlier = before <= after
    nearest = np.where(first, i + 1, np.where(last, i - 1, np.where(earlier, i - 1, i + 1)))
    second = np.where(first, i + 2, np.where(last, i - 2, np.where(earlier, i + 1, i - 1)))
    nearest = np.where(size >= 2, nearest, -1)
    second = np.where(inner | (size >= 3), second, -1)
    return nearest, second


@_needs("labs")
def _unit_mixups(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial
                 ) -> tuple[list[Problem], list[Problem]]:
    """A lab value off by an accepted unit's factor from the values measured just before and after it, which it
    fits once converted: most likely reported in that unit without saying so. An error when both neighbours
    agree; a warning (``unit_mixup_possible``) when only the nearest does, or the value has one neighbour. Results
    beyond a limit ("<5", ">2000") are limits, not measurements, and impossible values are their file's errors:
    both left out."""
    labs = tables["labs"]
    fname = names.get("labs", "labs.csv")
    errors, warnings = [], []
    tolerance = np.log(UNIT_MIXUP_TOLERANCE)
    for test in trial.lab_panel:
        other_units = {u: f for u, f in test.units if f != 1}
        if not other_units or test.column not in labs:
            continue
        measured = labs[test.column + CENS].isna() if test.column + CENS in labs else True
        data = labs.loc[measured, ["subject_id", "lab_date", test.column]].dropna()
        lo, hi = test.impossible
        possible = (data[test.column].astype(float) >= (-np.inf if lo is None else lo)) & \
                   (data[test.column].astype(float) <= (np.inf if hi is None else hi))
        data = data[(data[test.column].astype(float) > 0) & possible].sort_values(["subject_id", "lab_date"], kind="stable")
        values = data[test.column].astype(float).to_numpy()
        subjects = data["subject_id"].to_numpy()
        nearest, second = _neighbours(data["lab_date"].to_numpy(), subjects)
        has, both = nearest >= 0, second >= 0
        found = []
        for k, (unit, factor) in enumerate(other_units.items()):
            with np.errstate(divide="ignore", invalid="ignore"):
                fits = np.abs(np.log(values * factor / values[np.where(has, nearest, 0)])) < tolerance
                fits_second = np.abs(np.log(values * factor / values[np.where(both, second, 0)])) < tolerance
            for j in np.flatnonzero(has & fits):
                found.append((j, k, unit, factor, bool(both[j] and fits_second[j])))
        for j, _, unit, factor, sure in sorted(found, key=lambda f: (f[0], f[1])):
            v, sid = values[j], subjects[j]
            near = [values[nearest[j]]] + ([values[second[j]]] if both[j] else [])
            message = (f"{v:g} is about 1/{factor:g} of {sid}'s values measured "
                       f"{'just before and after it' if sure else 'nearest in time'} "
                       f"({', '.join(f'{x:g}' for x in near)} {test.unit}): reported in {unit}? "
                       f"x {factor:g} = {v * factor:.4g} {test.unit}")
            (errors if sure else warnings).append(
                Problem(fname, int(data.index[j]) + 2, test.column, "unit_mixup" if sure else "unit_mixup_possible", message))
    return errors, warnings


# A whole lab column is taken for another unit when at least this share of its values lies outside the
# expected range as written and, converted by the unit's factor, at most a tenth as many.
UNIT_COLUMN_SHARE = 0.2
UNIT_COLUMN_MIN_VALUES = 5


@_needs("labs")
def _unit_mixup_columns(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial) -> list[Problem]:
    """A whole lab column in another accepted unit without saying so: converted by the unit's factor, its median
    is inside the trial file's expected range and nearer its geometric middle, and the values outside that range
    (at least UNIT_COLUMN_SHARE of them as written) all but vanish. A population that sits high or low moves
    fewer values out of the range than a unit does."""
    labs = tables["labs"]
    fname = names.get("labs", "labs.csv")
    errors = []
    for test in trial.lab_panel:
        if not test.expected or test.column not in labs:
            continue
        values = labs[test.column].astype(float).dropna()
        values = values[values > 0]
        if len(values) < UNIT_COLUMN_MIN_VALUES:
            continue
        lo, hi = test.expected
        middle = np.log(np.sqrt(lo * hi)) if lo > 0 else None
        median = float(values.median())
        n_out = int(((values < lo) | (values > hi)).sum())
        for unit, factor in test.units:
            converted = median * factor
            n_conv = int(((values * factor < lo) | (values * factor > hi)).sum())
            nearer = middle is None or abs(np.log(converted) - middle) < abs(np.log(median) - middle)
            if (factor != 1 and lo <= converted <= hi and nearer and n_out >= UNIT_COLUMN_SHARE * len(values)
                    and n_conv <= n_out / 10):
                errors.append(Problem(fname, None, test.column, "unit_mixup_column",
                                      f"the whole column looks reported in {unit}: its median is {median:.4g} and "
                                      f"{n_out} of {len(values)} values lie outside the expected range [{lo:g}, {hi:g}] "
                                      f"{test.unit}; x {factor:g} ({unit} to {test.unit}) the median is {converted:.4g} "
                                      f"and {n_conv} lie outside. Add a column {test.column}_unit = {unit} (converted "
                                      f"on load), or export the column in {test.unit}"))
                break
    return errors


@_needs("randomization")
def _empty_arms(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial,
                failed: frozenset = frozenset()) -> list[Problem]:
    """Every arm has participants (else the arms cannot be compared); not said when an arm cell failed its check."""
    rand = tables["randomization"]
    fname = names.get("randomization", "randomization.csv")
    if _failed_in(failed, fname, "arm"):
        return []
    return [Problem(fname, None, "arm", "empty_arm", f"no participant in arm {arm.code} ({arm.label}): the arms "
                    "cannot be compared") for arm in trial.arms if not rand["arm"].eq(arm.code).any()]


@_needs("labs")
def _followup_data(tables: dict[str, pd.DataFrame], names: dict[str, str], trial: Trial,
                   failed: frozenset = frozenset()) -> list[Problem]:
    """Every lab endpoint has a value after baseline; not said when a value or visit of it failed its check."""
    labs = tables["labs"]
    fname = names.get("labs", "labs.csv")
    after = labs[labs["visit"].ne(trial.baseline_visit.code)]
    return [Problem(fname, None, e.code.lower(), "no_followup_data",
                    f"{e.label}: no value after baseline, so no change can be analysed "
                    "(remove the endpoint from the trial file, or check the export)")
            for e in trial.lab_endpoints
            if e.code.lower() in after and after[e.code.lower()].notna().sum() == 0
            and not _failed_in(failed, fname, e.code.lower(), "visit")]


@_needs()
def _identifiers_in_free_text(tables, names, trial: Trial) -> list[Problem]:
    """Free-text cells (AE terms, causes of death, withdrawal reasons) that hold a name, phone or ID number
    of the screening or randomization log: an error, so that no identifier reaches ADaM. The message names
    the identifier's raw column, never its value."""
    spec = export_spec(trial)
    free = {f: [c.name for c in s.columns if c.type == "string" and not c.identifier and c.name not in s.key]
            for f, s in spec.items()}
    found = identifiers_in_text(tables, identifier_values(tables), free)
    return [Problem(names.get(f, f"{f}.csv"), i + 2, col, "identifier_in_text",
                    f"holds a direct identifier (a value of {where}); remove it from the export")
            for f, i, col, where in found]


def _visit_warnings(tables, trial: Trial, names) -> list[Problem]:
    """Visits outside their window, unscheduled samples and repeated samples: listed, kept, and flagged in ADLB.
    On a valid export only: with errors, a duplicate record would reappear as a repeated visit and a wrong
    first-dose date as visits out of window."""
    rand = tables["randomization"].drop_duplicates("subject_id").set_index("subject_id")["rand_date"]
    day1 = trial.day_one(_at(rand.index.to_series(), treatment_start(tables, trial)), rand)
    out = []
    for name, date_col in (("labs", "lab_date"), ("clinical", "assessment_date")):
        t = tables[name]
        fname = names.get(name, f"{name}.csv")
        day = study_day(t[date_col], _at(t["subject_id"], day1))
        outside = pd.Series(False, index=t.index)
        for code in t["visit"].dropna().unique():
            if code != UNSCHEDULED:
                at = (t["visit"] == code) & day.notna()
                outside |= (at & ~trial.visit(code).holds(day)).fillna(False).astype(bool)
        for i in t.index[(t["visit"] == UNSCHEDULED).fillna(False).astype(bool) | outside]:
            visit = t.at[i, "visit"]
            if visit == UNSCHEDULED:
                out.append(Problem(fname, i + 2, "visit", "unscheduled_visit",
                                   "unscheduled sample: used for an analysis visit only if inside its window"))
                continue
            lo, hi = trial.visit(visit).window
            out.append(Problem(fname, i + 2, date_col, "visit_window",
                               f"study day {int(day[i])} outside the {visit} window [{lo}, {hi}]"))
        scheduled = t[t["visit"] != UNSCHEDULED]
        for i in scheduled.index[scheduled.duplicated(["subject_id", "visit"], keep="first")]:
            out.append(Problem(fname, i + 2, "visit", "repeated_visit",
                               f"second record of {t.at[i, 'visit']}: the one nearest the target day is analysed"))
    return out


def _apply_cutoff(tables, trial: Trial, names) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Records dated after the data cut-off are left out of the analysis (a warning each); participants
    randomized after it are left out whole. On a valid export only: an export with errors is not analysed, and
    its tables are returned as read so that every error can be seen."""
    if trial.cutoff is None:
        return tables, []
    cut = pd.Timestamp(trial.cutoff)
    warnings = []
    rand = tables["randomization"]
    late = rand[rand["rand_date"] > cut]
    for i in late.index:
        warnings.append(Problem(names["randomization"], i + 2, "rand_date", "after_cutoff",
                                f"randomized after the data cut-off ({trial.cutoff}): not in this analysis"))
    gone = set(late["subject_id"])
    out = {"screening": tables["screening"], "randomization": rand.drop(index=late.index)}
    for name, date_col in (("dosing", "dose_date"), ("labs", "lab_date"), ("clinical", "assessment_date"),
                           ("events", "start_date")):
        t = tables[name]
        after = (t[date_col] > cut).fillna(False).astype(bool) & ~t["subject_id"].isin(gone)
        for i in t.index[after]:
            warnings.append(Problem(names.get(name, f"{name}.csv"), i + 2, date_col, "after_cutoff",
                                    f"{t.at[i, date_col].date()} is after the data cut-off ({trial.cutoff}): not analysed"))
        out[name] = t[~after & ~t["subject_id"].isin(gone)]
    if "end_date" in out["events"]:
        ev = out["events"].copy()
        ev.loc[ev["end_date"] > cut, "end_date"] = pd.NaT
        out["events"] = ev
    return out, warnings


def validate_export(folder: str | Path, trial: Trial, export_date: dt.date | None = None, mapping=None,
                    effects: list | None = None) -> tuple[dict[str, pd.DataFrame], list[Problem], list[Problem]]:
    """Typed tables (identifiers still in, cut-off applied), errors and warnings for an export folder.

    Every problem is found in one pass: each file is checked, then every rule across files whose tables are
    present (a file that cannot be read, or lacks a required column, is absent; its error is reported). A cell
    that failed its check is missing in its typed table, and rules do not report it again. Visit warnings and
    the cut-off run on a valid export only: on one with errors a duplicate record or a wrong first-dose date
    would reappear as repeated or out-of-window visits, and the tables are not analysed anyway.
    ``export_date`` (default: today) is the last day a record may carry. ``mapping`` (an ExportMapping or its
    path; default: the trial file's ``export_mapping``) makes contract files from the site's own files; every
    problem is then named at the raw file's row and column, and ``effects`` (a list) receives what it did.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}, [Problem(str(folder), None, None, "folder", "export folder not found")], []
    tables, errors, warnings, names = {}, [], [], {}
    plan = resolve_mapping(mapping if mapping is not None else trial.export_mapping, trial)
    origins, effects = {}, effects if effects is not None else []
    for name, spec in export_spec(trial).items():
        if plan is not None and name in plan.files:
            table, errs, warns, origin = _check_mapped(folder, plan.files[name], spec, trial, effects)
            if origin is not None:
                names[name], origins[origin.token] = origin.token, origin
            errors += errs
            warnings += warns
            if table is not None:
                tables[name] = table
            elif spec.optional and origin is None:
                tables[name] = _empty(spec)
            continue
        path, clash = _find_file(folder, name)
        if clash:
            errors.append(clash)
            continue
        if path is None:
            if spec.optional:
                tables[name] = _empty(spec)
            else:
                errors.append(Problem(f"{name}.csv", None, None, "missing_file",
                                      f"file not found ({', '.join(SUFFIXES)})"))
            continue
        names[name] = path.name
        table, errs, warns = _check_file(path, spec, trial)
        errors += errs
        warnings += warns
        if table is not None:
            tables[name] = table
    tables = _canonical_keys(tables)
    failed = frozenset((p.file, p.row, p.column) for p in errors)

    def run(rule, *args, skipped=None):
        return rule(tables, *args) if all(n in tables for n in rule.needs) else (skipped or [])

    errors += run(_links, names) + run(_event_dates, names, trial) + run(_identifiers_in_free_text, names, trial)
    found, plausible = run(_plausibility, names, trial, export_date or dt.date.today())
    errors += found + run(_randomized_twice, names) + run(_consent, names, trial, failed)
    errors += run(_follow_up_ends, names, trial, failed) + run(_cutoff_before_randomization, names, trial)
    mixups, possible = run(_unit_mixups, names, trial, skipped=([], []))
    errors += mixups + run(_unit_mixup_columns, names, trial)
    errors += run(_empty_arms, names, trial, failed) + run(_followup_data, names, trial, failed)
    warnings += possible + plausible + run(_adverse_event_collection, names, trial, failed)
    if not errors:
        warnings += _visit_warnings(tables, trial, names)
        tables, late = _apply_cutoff(tables, trial, names)
        warnings += late
    return tables, *_at_raw_cells(errors, warnings, origins)


def resolve_mapping(mapping, trial: Trial):
    """The export mapping to apply: an ExportMapping, a path to load, or None (the export is in the contract's shape)."""
    from helpers.data.mapping import ExportMapping, load_mapping

    if mapping is None or isinstance(mapping, ExportMapping):
        return mapping
    return load_mapping(mapping, trial)


def _check_mapped(folder: Path, fm, spec: FileSpec, trial: Trial, effects: list):
    """A contract file made by the export mapping from the site's files, checked like any export file; its
    problems carry the mapped table's token until ``_at_raw_cells`` names the raw rows and columns."""
    from helpers.data.mapping import apply_mapping

    errors, warnings = [], []
    try:
        raw, origin = apply_mapping(folder, fm, spec, trial, warnings, errors, effects, set(missing_codes()))
    except ReadError as exc:
        return None, errors + [exc.problem], warnings, None
    if raw is None:
        return None, errors, warnings, origin
    table, errs, warns = _check_table(origin.token, raw, spec, trial, [], [])
    return table, errors + errs, warnings + warns, origin


def _at_raw_cells(errors: list[Problem], warnings: list[Problem], origins: dict) -> tuple[list[Problem], list[Problem]]:
    """Problems found on mapped tables named at the raw file's own row and column; a cell the mapping already
    reported (a date not in its declared format) is not reported again by the contract's type check."""
    if not origins:
        return errors, warnings

    def located(problems):
        return [origins[p.file].locate(p) if p.file in origins else p for p in problems]

    errors, warnings = located(errors), located(warnings)
    reported = {(p.file, p.row, p.column) for p in errors if p.rule == "mapping_date"}
    errors = [p for p in errors if p.rule != "type" or (p.file, p.row, p.column) not in reported]
    return errors, warnings


# --- report -------------------------------------------------------------------------------------

def problems_frame(errors: list[Problem], warnings: list[Problem]) -> pd.DataFrame:
    """Every finding, one row each: severity, file, row, column, rule, message."""
    rows = [("error", p) for p in errors] + [("warning", p) for p in warnings]
    return pd.DataFrame([(s, p.file, p.row, p.column, p.rule, p.message) for s, p in rows],
                        columns=["severity", "file", "row", "column", "rule", "message"]).astype({"row": "Int64"})


def summary_by_rule(errors: list[Problem], warnings: list[Problem], examples: int = 3) -> pd.DataFrame:
    """Findings counted by severity and rule, with the first few as examples."""
    df = problems_frame(errors, warnings)
    cols = ["severity", "rule", "count", "examples"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    where = df["file"] + df["row"].map(lambda r: "" if pd.isna(r) else f" row {r}")
    df = df.assign(where=where + df["column"].map(lambda c: "" if c is None or pd.isna(c) else f" {c}"))
    out = (df.groupby(["severity", "rule"], sort=False)
             .agg(count=("rule", "size"), examples=("where", lambda s: "; ".join(s.head(examples))))
             .reset_index())
    return out[cols]


def summary_text(errors: list[Problem], warnings: list[Problem] | None = None) -> str:
    """The summary by rule as text lines, for the console."""
    s = summary_by_rule(errors, warnings or [])
    return "\n".join(f"  {r.severity} {r.rule}: {r.count} (e.g. {r.examples})" for r in s.itertuples())


def write_validation_report(errors: list[Problem], warnings: list[Problem], out_dir: str | Path,
                            effects: list | None = None) -> list[Path]:
    """problems.csv (every finding) and summary.csv (by rule) in ``out_dir`` (the build's validation/), and
    mapping.csv (what the export mapping did) when the export was read through one."""
    from helpers.data.mapping import effects_frame

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    frames = [("problems", problems_frame(errors, warnings)), ("summary", summary_by_rule(errors, warnings))]
    for name, df in frames + ([("mapping", effects_frame(effects))] if effects else []):
        path = out_dir / f"{name}.csv"
        df.to_csv(path, index=False, lineterminator="\n")
        written.append(path)
    return written


# --- loading ------------------------------------------------------------------------------------

def drop_identifiers(tables: dict[str, pd.DataFrame], trial: Trial) -> dict[str, pd.DataFrame]:
    """The tables without the contract's direct identifiers (names, phones, ID numbers, birth dates)."""
    spec = export_spec(trial)
    return {name: t.drop(columns=[c for c in spec[name].identifiers if c in t]) for name, t in tables.items()}


def age_at(birth: pd.Series, on: pd.Series) -> pd.Series:
    """Age in completed years on a date."""
    had_birthday = (on.dt.month > birth.dt.month) | ((on.dt.month == birth.dt.month) & (on.dt.day >= birth.dt.day))
    return (on.dt.year - birth.dt.year - (~had_birthday).astype(int)).astype("Int64")


def derive_age(screening: pd.DataFrame) -> pd.Series:
    """AGE in completed years at screening: the age column where given, else from the birth date."""
    derived = age_at(screening["birth_date"], screening["screening_date"]) if "birth_date" in screening \
        else pd.Series(pd.NA, index=screening.index, dtype="Int64")
    given = screening["age"] if "age" in screening else pd.Series(pd.NA, index=screening.index, dtype="Int64")
    return given.astype("Int64").fillna(derived)


def load_export(folder: str | Path, trial: Trial) -> Export:
    """Validated export with AGE derived and direct identifiers dropped; raises ExportError listing every error."""
    tables, errors, warnings = validate_export(folder, trial)
    if errors:
        raise ExportError(Path(folder), errors, trial)
    return export_from(tables, warnings, folder, trial)


def export_from(tables: dict[str, pd.DataFrame], warnings: list[Problem], folder: str | Path, trial: Trial) -> Export:
    """The analysable export from ``validate_export``'s tables (no errors): AGE derived, direct identifiers dropped."""
    tables = dict(tables)
    scr = tables["screening"].copy()
    age = derive_age(scr)
    scr = scr.drop(columns=[c for c in ("age",) if c in scr])
    scr.insert(scr.columns.get_loc("sex"), "age", age)
    tables["screening"] = scr
    return Export(Path(folder), drop_identifiers(tables, trial), warnings, trial)
