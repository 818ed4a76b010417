"""The raw export contract (export_schema.yaml, completed from the trial file) and the data dictionary generated from it."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

from helpers.scores import GRADE_UNKNOWN
from helpers.trial import ADVERSE_EVENT, Trial, shown_unit

SCHEMA_FILE = Path(__file__).with_name("export_schema.yaml")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str
    unit: str = ""
    allowed: tuple[str, ...] | None = None
    allowed_from: str | None = None
    min: float | None = None
    max: float | None = None
    required: bool = False
    required_when: dict | None = None
    identifier: bool = False
    optional_column: bool = False
    why: str = ""

    def allowed_values(self, trial: Trial) -> tuple[str, ...] | None:
        """Allowed codes, from the schema or (for arms, visits and event types) from the trial file."""
        if self.allowed_from == "event_types":
            return (ADVERSE_EVENT,) + tuple(trial.end_of_follow_up_codes)
        if self.allowed_from == "arms":
            return tuple(trial.arm_codes)
        if self.allowed_from == "visits":
            return tuple(trial.visit_codes) + (UNSCHEDULED,)
        if self.allowed_from == "covariate":
            levels = next((c.levels for c in trial.baseline_covariates if c.code == self.name.upper()), ())
            return levels or self.allowed
        if self.type == "flag":
            return ("Y", "N")
        return self.allowed


@dataclass(frozen=True)
class FileSpec:
    name: str
    meaning: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    optional: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def identifiers(self) -> list[str]:
        return [c.name for c in self.columns if c.identifier]


UNSCHEDULED = "UNSCHEDULED"

# Every rule, whether it stops the build, and why (the data dictionary prints this table).
RULES = {
    "folder": ("error", "the export folder does not exist"),
    "missing_file": ("error", "a file the trial needs is absent or empty"),
    "one_file_per_table": ("error", "with a CSV and an XLSX of one table, which one is right cannot be known"),
    "readable": ("error", "the file cannot be read as a table"),
    "encoding": ("error", "text that is not UTF-8 would be read as the wrong characters"),
    "delimiter": ("error", "a file with another delimiter would be read as one column"),
    "fields": ("error", "a row with more fields than the header would shift its values into other columns"),
    "header": ("error", "a title row above the header would be read as column names"),
    "sheets": ("error", "sheets with different headers are different tables"),
    "repeated_header": ("error", "a header row among the data (two exports concatenated): records may be there twice"),
    "columns": ("error", "a column the contract needs is absent"),
    "required": ("error", "keys, and the few cells no analysis can do without, must be filled"),
    "type": ("error", "a value that is not a number, integer or date cannot be analysed"),
    "allowed": ("error", "a code outside the list (arms, visits, grades, units) cannot be interpreted"),
    "range": ("error", "a count or dose outside its possible limits is a typing error"),
    "impossible": ("error", "a laboratory value or an age that cannot be true is a typing error"),
    "unique_key": ("error", "a duplicate record (space, case and zero padding ignored) would be counted twice"),
    "foreign_key": ("error", "a record of a participant never randomized (or a randomized person never screened)"),
    "date_order": ("error", "an event ending before it starts, or follow-up ending before randomization"),
    "one_death": ("error", "a participant dies once"),
    "after_end_of_follow_up": ("error", "a visit after death, an intercurrent event of the trial file or withdrawal"),
    "after_death": ("error", "an event after the participant's death"),
    "future_date": ("error", "a date after the export date is a typing error (it would make a death invisible)"),
    "randomized_twice": ("error", "one person (same screening number, ID number, or name and birth date) randomized "
                                  "twice would be counted as two participants"),
    "randomized_without_consent": ("error", "a participant randomized without informed consent (consent flag not Y)"),
    "no_end_of_follow_up": ("error", "in a final analysis (no cut-off) a participant without death, an intercurrent "
                                     "event of the trial file, withdrawal or completion would be counted alive and "
                                     "ongoing"),
    "cutoff_before_randomization": ("error", "a data cut-off before the first randomization leaves nobody to analyse"),
    "unit_mixup": ("error", "a value off by a unit's factor from the participant's values just before and after it "
                            "(which agree once it is converted) was reported in another unit"),
    "unit_mixup_possible": ("warning", "a value off by a unit's factor from the participant's nearest value only (or "
                                       "its only other value): perhaps another unit, perhaps a real change; for review"),
    "unit_mixup_column": ("error", "a whole column off the expected range by an accepted unit's factor (its median and "
                                   "the values outside fit once converted) was reported in that unit"),
    "no_adverse_events": ("warning", "no adverse event in the events file: counted as none; if the trial did not "
                                     "collect them, the trial file says so (safety: {adverse_events_collected: false})"),
    "adverse_events_not_collected": ("warning", "adverse events in the events file of a trial whose file says they were "
                                                "not collected: kept out of the safety tables"),
    "identifier_in_text": ("error", "a name, phone or ID number in a free-text cell would reach the analysis data"),
    "empty_arm": ("error", "an arm without participants cannot be compared"),
    "no_followup_data": ("error", "an endpoint without values after baseline has no change to analyse"),
    "expected_range": ("warning", "unusual but possible (ALP above 2000 U/L in cholestasis): listed for review"),
    "extra_column": ("warning", "real exports carry more than the analysis needs: kept out of it"),
    "unit_converted": ("warning", "a value given in another accepted unit was converted"),
    "visit_window": ("warning", "a visit outside its window is a protocol deviation, still analysed at that visit"),
    "unscheduled_visit": ("warning", "kept; analysed only if inside a visit window and nearest its target day"),
    "repeated_visit": ("warning", "kept; the sample nearest the target day is analysed (ANL01FL)"),
    "after_cutoff": ("warning", "records after the data cut-off are left out of an interim analysis"),
    "eligibility": ("warning", "a participant randomized outside the protocol's age bounds: a protocol deviation"),
    "trailing_delimiter": ("warning", "an empty last field on every row was ignored"),
    "sheets_combined": ("warning", "several sheets with one header were read as one table"),
    "sheet_not_found": ("error", "the export mapping names a workbook sheet the file does not have"),
    "mapping_column": ("error", "a column the export mapping names is not in the site's file"),
    "mapping_date": ("error", "a date not written in the format the export mapping declares for its column"),
    "mapping_duplicate_result": ("error", "two results of one test for one sample (long laboratory rows): which "
                                          "one is right cannot be known"),
    "unmapped_test": ("warning", "a test of the site's long laboratory file that the mapping does not name (a test "
                                 "outside the panel): left out"),
    "hidden_sheet": ("warning", "a hidden sheet (a draft, a lookup list) is left out: only visible sheets are data"),
}



@lru_cache(maxsize=None)
def _raw(path: Path = SCHEMA_FILE) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def missing_codes() -> dict[str, str]:
    """Cell codes that record a missing value with its reason (upper case -> reason)."""
    return {str(k).upper(): v for k, v in _raw()["missing_codes"].items()}


def censored_rule() -> str:
    return _raw()["censored_results"]


@lru_cache(maxsize=None)
def load_schema(path: Path = SCHEMA_FILE) -> dict[str, FileSpec]:
    """The trial-independent part of the contract: every file, in the order the schema lists them."""
    files = {}
    for fname, spec in _raw(path)["files"].items():
        cols = []
        for cname, c in spec["columns"].items():
            c = dict(c)
            if "allowed" in c:
                c["allowed"] = tuple(str(v) for v in c["allowed"])
            cols.append(Column(name=cname, **c))
        files[fname] = FileSpec(fname, spec["meaning"], tuple(spec["key"]), tuple(cols), bool(spec.get("optional")))
    return files


def _trial_columns(name: str, trial: Trial) -> list[Column]:
    """Columns a file gets from the trial file: eligibility flags, lab tests (and their unit columns), clinical
    assessments (grades with their levels, or flags)."""
    if name == "clinical":
        return [Column(a.column, "flag", a.label) if a.is_flag else
                Column(a.column, "category", a.label + (f" ({GRADE_UNKNOWN}: a score that needs the grade is not "
                                                         "derivable)" if a.unknown else ""), allowed=a.allowed)
                for a in trial.clinical_assessments]
    if name == "screening":
        return [Column(c.column, "flag", f"{c.label} ({c.kind} {c.number})") for c in trial.eligibility]
    if name == "labs":
        out = []
        for t in trial.lab_panel:
            out.append(Column(t.column, "number", t.label, unit=t.unit, min=t.impossible[0], max=t.impossible[1]))
            if t.units:
                out.append(Column(f"{t.column}_unit", "category", f"Unit of {t.column} on this row (empty: {t.unit or 'unitless'})",
                                  allowed=tuple(t.factors), optional_column=True))
        return out
    return []


def export_spec(trial: Trial) -> dict[str, FileSpec]:
    """The whole contract for one trial: the schema completed with the trial file's lab panel,
    eligibility flags, dose unit and range, and which files the trial may lack."""
    out = {}
    for name, spec in load_schema().items():
        cols = [c for c in spec.columns] + _trial_columns(name, trial)
        optional = spec.optional
        if name == "dosing":
            lo, hi = trial.treatment.dose_range
            cols = [Column(c.name, c.type, c.meaning, unit=trial.treatment.dose_unit,
                           min=lo if lo > float("-inf") else None, max=hi if hi < float("inf") else None)
                    if c.name == "dose" else c for c in cols]
            optional = not trial.has_dosing_file
        out[name] = FileSpec(name, spec.meaning, spec.key, tuple(cols), optional)
    return out


def _allowed_text(col: Column, trial: Trial) -> str:
    parts = []
    allowed = col.allowed_values(trial)
    if allowed:
        parts.append(", ".join(allowed))
    if col.min is not None or col.max is not None:
        parts.append(f"{_num(col.min)} to {_num(col.max)}")
    if col.type == "date":
        parts.append("YYYY-MM-DD (a time of day may follow, and is dropped)")
    return "; ".join(parts)


def _num(x) -> str:
    if x is None or x in (float("inf"), float("-inf")):
        return ""
    return f"{x:g}"


def _required_text(col: Column, spec: FileSpec) -> str:
    if col.name in spec.key:
        return "key; may be empty" if col.type == "date" else "yes (key)"
    if col.required_when:
        return "if " + ", ".join(f"{k} = {v}" for k, v in col.required_when.items())
    if col.required:
        return f"yes: {col.why}" if col.why else "yes"
    return "no" + ("; column may be absent" if col.optional_column else "")


def _missing_text(tables: dict[str, pd.DataFrame] | None, file: str, column: str) -> str:
    """Missing cells of a column in this export: 'n of N', or '' where unknown (identifiers are dropped on load)."""
    table = (tables or {}).get(file)
    if table is None or column not in table:
        return ""
    return f"{int(table[column].isna().sum())} of {len(table)}"


def data_dictionary(trial: Trial, tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per column of the raw export: file, column, type, unit, allowed values, meaning; with the
    loaded export's ``tables``, also how many of its cells are missing."""
    rows = []
    for spec in export_spec(trial).values():
        for col in spec.columns:
            rows.append({
                "File": f"{spec.name}.csv", "Column": col.name, "Type": col.type,
                "Unit": shown_unit(col.unit), "Allowed values": _allowed_text(col, trial),
                "Required": _required_text(col, spec),
                "Meaning": col.meaning + (" **Direct identifier: dropped on load.**" if col.identifier else ""),
                **({"Missing in this export": _missing_text(tables, spec.name, col.name)} if tables is not None else {}),
            })
    return pd.DataFrame(rows)


def data_dictionary_markdown(trial: Trial, tables: dict[str, pd.DataFrame] | None = None) -> str:
    """The data dictionary as MyST markdown: one section and table per file (with missing counts when
    the export's ``tables`` are given)."""
    dd = data_dictionary(trial, tables)
    out = [_conventions_markdown(trial)]
    for spec in export_spec(trial).values():
        optional = " The file may be absent or empty." if spec.optional else ""
        out.append(f"## `{spec.name}.csv`\n\n{spec.meaning} Key: {', '.join(spec.key)}.{optional}\n")
        table = dd[dd["File"] == f"{spec.name}.csv"].drop(columns="File")
        out.append(_markdown_table(table))
    return "\n".join(out)


def _rules_markdown() -> str:
    rows = "\n".join(f"| `{rule}` | {severity} | {why} |" for rule, (severity, why) in RULES.items())
    return f"| Rule | Severity | Why |\n|---|---|---|\n{rows}\n"


def _conventions_markdown(trial: Trial) -> str:
    """How missing, censored and converted values are written, and what is an error or a warning."""
    codes = "\n".join(f"| `{k}` | {v} |" for k, v in missing_codes().items())
    units = "; ".join(f"{t.label}: {', '.join(f'{u} x {f:g}' for u, f in t.units)} to {t.unit}"
                      for t in trial.lab_panel if t.units) or "none"
    ranges = "\n".join(
        f"| {t.label} | {t.unit if t.unit != '1' else ''} | {_num(t.impossible[0])} to {_num(t.impossible[1])} | "
        f"{(_num(t.expected[0]) + ' to ' + _num(t.expected[1])) if t.expected else ''} |" for t in trial.lab_panel)
    return f"""## Conventions

**Missing values.** Any cell that is not part of a file's key may be empty: the value is missing and no
reason is given. A cell may instead hold one of these codes (any letter case); the value is then
missing with that reason, carried into the analysis datasets (ADLB: `LBSTAT` = NOT DONE, `LBREASND`):

| Code | Reason |
|---|---|
{codes}

**Results beyond a limit of quantification.** {censored_rule()}.

**Units.** Each test is expected in the unit of the trial's panel. A column `<test>_unit` may name
another accepted unit on a row; the value is then converted: {units}. Units are compared after Unicode
NFKC normalization, with the Greek mu or the micro sign read as u (µmol/L = umol/L).

**Errors and warnings.** An error stops the build: a value outside the impossible limits, a broken key
(duplicate or unknown participant, whitespace and letter case ignored), dates in the wrong order, a
missing file or column the trial needs. A warning is listed in the validation report and does not stop
the build: a value outside the expected range, a visit outside its window, an unscheduled or repeated
sample, a column the contract does not name, a record after the data cut-off (left out of the analysis).

{_rules_markdown()}

| Test | Unit | Impossible outside (error) | Expected range (warning outside) |
|---|---|---|---|
{ranges}
"""


def _markdown_table(df: pd.DataFrame) -> str:
    esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
