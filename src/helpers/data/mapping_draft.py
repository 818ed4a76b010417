"""Drafting an export mapping: for a site's export folder, a YAML mapping (the format of helpers.data.mapping) for a
person to review, written by ``python -m helpers map --suggest``.

Each file (each sheet of a workbook) is proposed as one contract file by the columns it matches; headers are matched
to contract columns by normalized name, by the vocabularies of column names (column_names.yaml) and laboratory names
(lab_names.yaml), and the values seen propose recodes (Y/N flags, codes, arms, visits) and date formats. A file of
one row per laboratory result gets a ``long:`` block and ``tests:``. Nothing is decided silently: every suggestion is
written with its reason, and whatever is not matched is listed in comments for the person to decide.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

from helpers.data.mapping import EXCEL, parse_dates
from helpers.data.reading import read_raw
from helpers.data.schema import UNSCHEDULED, Column, FileSpec, export_spec, missing_codes
from helpers.trial import LabTest, Trial, unit_key

LAB_NAMES = Path(__file__).with_name("lab_names.yaml")
COLUMN_NAMES = Path(__file__).with_name("column_names.yaml")
SUFFIXES = (".csv", ".xlsx", ".xpt", ".sas7bdat", ".sav")
LONG_ROLES = ("subject_id", "visit", "lab_date", "test", "value", "unit")
ISO_DATE = "%Y-%m-%d"
EXCEL_SERIALS = (20000, 80000)  # day numbers of 1954-10-03 to 2119-01-10 in the 1900 date system
_PAREN = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
_NUMBER = re.compile(r"^[<>]?\s*=?\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_WEEK = re.compile(r"^(?:第(\d+)周|(\d+)周|(?:week|wk|w)(\d+))$")
_SHOWN = 5  # values shown per unmatched column


# --- names ------------------------------------------------------------------------------------------

def normalized(text) -> str:
    """A name as names are compared, readable: NFKC, letter case folded, punctuation and underscores as one space."""
    return re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", str(text)).casefold()).strip()


def name_key(text) -> str:
    """A name as names are compared: ``normalized`` without spaces ("Screening_ID" and "screening id" agree)."""
    return normalized(text).replace(" ", "")


def split_paren(text) -> tuple[str, str | None]:
    """A header and the text of a trailing parenthesis (full-width ones too): "Creatinine (umol/L)" ->
    ("Creatinine", "umol/L"); no parenthesis: (text, None)."""
    m = _PAREN.match(unicodedata.normalize("NFKC", str(text)).strip())
    return (m.group(1), m.group(2).strip()) if m and m.group(1) else (str(text), None)


def _forms(text) -> list[tuple[str, str]]:
    """The forms a name is matched by, in order: the whole, without a trailing parenthesis, the parenthesis alone."""
    name, paren = split_paren(text)
    out = [("", name_key(text)), (f", with ({paren}) left out", name_key(name)) if paren is not None else None,
           (f", by its parenthesis ({paren})", name_key(paren)) if paren else None]
    seen, forms = set(), []
    for f in out:
        if f and f[1] and f[1] not in seen:
            seen.add(f[1])
            forms.append(f)
    return forms


# --- vocabularies -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabName:
    """One test of the laboratory-name vocabulary (lab_names.yaml)."""
    code: str
    loinc: str
    names: tuple[str, ...]
    units: tuple[str, ...]

    @property
    def keys(self) -> set[str]:
        return {name_key(n) for n in (self.code,) + self.names}

    def __str__(self) -> str:
        return f"{self.code}" + (f", LOINC {self.loinc}" if self.loinc else "")


@lru_cache(maxsize=None)
def lab_names(path: Path = LAB_NAMES) -> tuple[LabName, ...]:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return tuple(LabName(str(t["code"]), str(t.get("loinc") or ""),
                         tuple(str(n) for n in t.get("en", []) + t.get("zh", [])),
                         tuple(str(u) for u in t.get("units", []))) for t in raw["tests"])


@lru_cache(maxsize=None)
def column_names(path: Path = COLUMN_NAMES) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _claim(table: dict, key: str, value: tuple, rank: int = 0) -> None:
    """Record key -> value (a tuple, its first item what the key stands for) unless a better-ranked (lower) claim
    holds it; two claims of one rank for different things make the key ambiguous: it then matches nothing."""
    if not key:
        return
    held = table.get(key)
    if held is None or rank < held[1]:
        table[key] = (value, rank)
    elif rank == held[1] and held[0] is not None and held[0][0] != value[0]:
        table[key] = (None, rank)


def _resolved(table: dict) -> dict:
    return {k: v[0] for k, v in table.items() if v[0] is not None}


@dataclass(frozen=True)
class PanelLinks:
    """The trial's lab panel by every name it may be written with: name key -> (panel test, reason); and the
    vocabulary's tests that are not in the panel."""
    tests: dict
    others: dict
    loinc: dict

    def find(self, text) -> tuple[LabTest | None, str, LabName | None]:
        """The panel test a name (or LOINC code) stands for, the reason; else the vocabulary test it names, if any."""
        code = str(text).strip()
        if code in self.loinc:
            test, entry = self.loinc[code]
            if test is not None:
                return test, f"LOINC {code} is {entry.code} in lab_names.yaml, the panel's {test.code}", None
            return None, "", entry
        for how, key in _forms(text):
            if key in self.tests:
                test, why = self.tests[key]
                return test, why + how, None
        for how, key in _forms(text):
            if key in self.others:
                return None, "", self.others[key]
        return None, "", None


@lru_cache(maxsize=None)
def panel_links(trial: Trial) -> PanelLinks:
    """A vocabulary test is linked to a panel test when the panel test's code, column or label is one of its names."""
    table: dict = {}
    linked: dict[str, LabTest] = {}
    for t in trial.lab_panel:
        own: dict[str, str] = {}
        for key, why in ((t.code, f"the panel's code {t.code}"), (t.column, f"the panel's column {t.column}"),
                         (t.label, f'the panel\'s label "{t.label}" of {t.code}')):
            own.setdefault(name_key(key), why)
        for key, why in own.items():
            _claim(table, key, (t, f"name matches {why}"), 0)
        for entry in lab_names():
            hits = [why for key, why in own.items() if key in entry.keys]
            if not hits:
                continue
            linked.setdefault(entry.code, t)
            for name in (entry.code,) + entry.names:
                _claim(table, name_key(name), (t, f'"{name}" is a name of {entry} in lab_names.yaml, linked to '
                                                  f"{hits[0].replace('the panel', 'the panel test')}"), 1)
    tests = _resolved(table)
    others = {}
    for entry in lab_names():
        if entry.code not in linked:
            for key in entry.keys:
                if key not in tests:
                    others.setdefault(key, entry)
    loinc = {e.loinc: (linked.get(e.code), e) for e in lab_names() if e.loinc}
    return PanelLinks(tests, others, loinc)


def _known_units(trial: Trial) -> set[str]:
    units = {unit_key(u) for e in lab_names() for u in e.units}
    units |= {unit_key(u) for t in trial.lab_panel for u in t.factors}
    return {u for u in units if u}


# --- columns of the contract ------------------------------------------------------------------------

@dataclass(frozen=True)
class Match:
    column: str
    why: str


def _column_table(spec: FileSpec, trial: Trial) -> dict[str, Match]:
    """Every name a contract file's columns may be written with: name key -> Match (column and reason)."""
    synonyms = column_names()["columns"]
    panel = {t.column: t for t in trial.lab_panel} if spec.name == "labs" else {}
    table: dict = {}
    for col in spec.columns:
        _claim(table, name_key(col.name), (col.name, f'name matches "{normalized(col.name)}" after normalization'), 0)
        for other in synonyms.get(col.name, []):
            _claim(table, name_key(other), (col.name, f'"{other}" is a name of {col.name} in column_names.yaml'), 1)
        if col.name not in panel:
            meaning = split_paren(col.meaning)[0]
            _claim(table, name_key(meaning), (col.name, f'name matches the description "{meaning}" of {col.name}'), 3)
    if panel:
        for key, (test, why) in panel_links(trial).tests.items():
            _claim(table, key, (test.column, why), 2)
    return {k: Match(*v) for k, v in _resolved(table).items()}


def _match_header(header: str, label: str | None, table: dict[str, Match]) -> Match | None:
    for text, whose in ((header, ""), (label, f"its label {label!r}: ")):
        if not text:
            continue
        for how, key in _forms(text):
            if key in table:
                m = table[key]
                return Match(m.column, whose + m.why + how)
    return None


# --- values -----------------------------------------------------------------------------------------

def _cells(frame: pd.DataFrame, column: str) -> pd.Series:
    """The non-empty cells of a column that are not missing-value codes, stripped."""
    text = frame[column].astype(str).str.strip()
    codes = set(missing_codes())
    return text[(text != "") & ~text.str.upper().isin(codes)]


def _counts(cells: pd.Series) -> list[tuple[str, int]]:
    """Distinct values, most frequent first, then by value: a stable order."""
    counts = cells.value_counts()
    return sorted(((str(v), int(n)) for v, n in counts.items()), key=lambda x: (-x[1], x[0]))


def _shown(counts: list[tuple[str, int]], n: int = _SHOWN) -> str:
    head = ", ".join(v for v, _ in counts[:n])
    return head + (f", ... ({len(counts)} distinct)" if len(counts) > n else "")


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


def _flag_words() -> dict[str, str]:
    return {name_key(w): code for code, words in column_names()["flags"].items() for w in words + [code]}


def _visit_code(value: str, trial: Trial) -> tuple[str, str] | None:
    """A visit written by its week ("第4周", "Week 4", "W4") or as baseline / unscheduled: its code and reason."""
    words = column_names()["visits"]
    key = name_key(value)
    baseline = [v for v in trial.visits if v.is_baseline]
    if key in {name_key(w) for w in words["baseline"]} and len(baseline) == 1:
        return baseline[0].code, f'"{value}" names the baseline visit (column_names.yaml), week 0: {baseline[0].code}'
    if key in {name_key(w) for w in words["unscheduled"]}:
        return UNSCHEDULED, f'"{value}" names an unscheduled visit (column_names.yaml)'
    m = _WEEK.match(key)
    if m:
        week = int(next(g for g in m.groups() if g is not None))
        hits = [v for v in trial.visits if v.week == week]
        if len(hits) == 1:
            return hits[0].code, f'"{value}" names week {week}: the trial\'s visit {hits[0].code}'
    return None


def _value_table(col: Column, trial: Trial) -> dict[str, tuple[str, str]]:
    """Every way a category or flag column's allowed values may be written: name key -> (code, reason)."""
    allowed = col.allowed_values(trial) or ()
    table: dict = {}
    for code in allowed:
        _claim(table, name_key(code), (code, f"matches the code {code} after normalization"), 0)
    if col.allowed_from == "arms":
        for arm in trial.arms:
            _claim(table, name_key(arm.label), (arm.code, f'the label "{arm.label}" of arm {arm.code}'), 1)
            _claim(table, name_key(arm.description), (arm.code, f'the description of arm {arm.code}'), 2)
    if col.allowed_from == "visits":
        for v in trial.visits:
            _claim(table, name_key(v.label), (v.code, f'the label "{v.label}" of visit {v.code}'), 1)
    for code, words in (column_names()["values"].get(col.name) or {}).items():
        if code in allowed:
            for w in words:
                _claim(table, name_key(w), (code, f'"{w}" means {code} (column_names.yaml)'), 1)
    if col.type == "flag":
        for key, code in _flag_words().items():
            _claim(table, key, (code, f"a Y/N-like value read as {code}"), 1)
    return _resolved(table)


def _recode(col: Column, counts: list[tuple[str, int]], trial: Trial) -> tuple[list, list]:
    """(recodes as (value, code, reason), unmatched (value, count)) for a category or flag column's values."""
    allowed = set(col.allowed_values(trial) or ())
    table = _value_table(col, trial)
    lines, unmatched = [], []
    for value, n in sorted(counts):
        if value in allowed:
            continue
        hit = table.get(name_key(value))
        if hit is None and col.allowed_from == "visits":
            hit = _visit_code(value, trial)
        if hit is None:
            unmatched.append((value, n))
        else:
            lines.append((value, hit[0], f"{hit[1]} ({_rows(n)})"))
    rank = {code: i for i, code in enumerate(col.allowed_values(trial) or ())}
    return sorted(lines, key=lambda x: (rank.get(x[1], len(rank)), x[0])), unmatched


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _date_formats() -> list[str]:
    dates = [f"%Y{s}%m{s}%d" for s in "-/."] + [f"%d{s}%m{s}%Y" for s in "-/."] + \
            [f"%m{s}%d{s}%Y" for s in "-/."] + ["%Y年%m月%d日", "%Y%m%d"]
    times = ["", " %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S"]
    return [d + t for d in dates for t in times]


def _fits(fmt: str, values: list[str]) -> bool:
    for v in values:
        try:
            dt.datetime.strptime(v, fmt)
        except ValueError:
            return False
    return True


@dataclass(frozen=True)
class DateGuess:
    """A date format for a column's values (``sure``: one format fits all values and no other reading does)."""
    format: str | None
    why: str
    sure: bool


def date_format(counts: list[tuple[str, int]]) -> DateGuess | None:
    """The date format the values are written in: a strptime format or ``excel``; None where they are not dates.

    Day or month first (DD/MM/YYYY vs MM/DD/YYYY) is told by a number above 12; where none tells, the guess is
    marked unsure. Excel serial day numbers are whole numbers between 20000 and 80000.
    """
    values = [v for v, _ in counts]
    if not values:
        return None
    n = sum(c for _, c in counts)
    numbers = [float(v) for v in values if _is_number(v) and not v.startswith(("<", ">"))]
    if len(numbers) == len(values):
        if all(x.is_integer() and EXCEL_SERIALS[0] <= x <= EXCEL_SERIALS[1] for x in numbers):
            first = min(numbers)
            return DateGuess("excel", f"all {n} values are whole numbers in {EXCEL_SERIALS[0]}-{EXCEL_SERIALS[1]}: "
                                      f"Excel serial days (e.g. {first:.0f} = {parse_dates(pd.Series([str(first)]), EXCEL)[0]:%Y-%m-%d})", True)
        if not all(len(v) == 8 for v in values):
            return None
    fits = [f for f in _date_formats() if _fits(f, values)]
    if not fits:
        return None
    fmt = fits[0]
    has_time = "%H" in fmt
    what = "date-times" if has_time else "dates"
    if fmt.startswith(("%d", "%m")):
        other = fmt.replace("%d", "@").replace("%m", "%d").replace("@", "%m")
        if other in fits:
            return DateGuess(fmt if fmt.startswith("%d") else other,
                             f"all {n} values fit both {fmt} and {other}: no number above 12 tells day from month; "
                             "CHECK with the site", False)
        pos = 0 if fmt.startswith("%d") else 1
        sep = next(c for c in values[0] if not c.isdigit())
        example = next(v for v in values if int(re.split(r"\D", v)[pos]) > 12)
        part = example.split(sep)[pos] if sep in example else example
        return DateGuess(fmt, f"all {n} values are {what} {fmt}; {part} in {example} is above 12, so the "
                              f"{'day' if pos == 0 else 'month'} comes first", True)
    return DateGuess(fmt, f"all {n} values are {what} {fmt}", True)


# --- reading ----------------------------------------------------------------------------------------

@dataclass
class Table:
    """One table of the export: a file, one sheet of a workbook, or several with one header read as one
    (``files``: files named by ``pattern``, stacked in name order, or the sheets of one workbook)."""
    path: Path
    sheet: str | None
    frame: pd.DataFrame
    pattern: str | None = None
    files: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return self.pattern or self.path.name

    @property
    def name(self) -> str:
        return self.source + (f" (sheet {self.sheet})" if self.sheet else "")

    @property
    def labels(self) -> dict:
        return dict(self.frame.attrs.get("labels") or {})


def _read_sheet(path: Path, sheet: str | None) -> pd.DataFrame:
    """A file, or one sheet of a workbook, as text cells."""
    return read_raw(path, [], [], sheet=sheet)


def _pattern(names: list[str], all_names: list[str]) -> str | None:
    """A glob pattern that names these files and no other file of the folder ("labs_*.csv"), if there is one."""
    stems = [Path(n).stem for n in names]
    suffix = {Path(n).suffix for n in names}
    if len(suffix) != 1:
        return None
    head = os.path.commonprefix(stems)
    tail = os.path.commonprefix([s[len(head):][::-1] for s in stems])[::-1]
    pattern = f"{head}*{tail}{suffix.pop()}"
    return pattern if sorted(n for n in all_names if fnmatch.fnmatchcase(n, pattern)) == sorted(names) else None


def stack_same_header(tables: list[Table], folder: Path) -> tuple[list[Table], list[str]]:
    """Files (not sheets) with one header become one table named by a glob pattern, their rows stacked in name
    order, as the mapping's ``source`` stacks them; where no pattern names them alone, a note says so."""
    all_names = sorted(p.name for p in folder.iterdir() if p.is_file())
    groups: dict[tuple, list[Table]] = {}
    for t in tables:
        key = (t.path.suffix.lower(), tuple(t.frame.columns)) if t.sheet is None else (id(t),)
        groups.setdefault(key, []).append(t)
    out, notes = [], []
    for group in groups.values():
        names = [t.path.name for t in group]
        pattern = _pattern(names, all_names) if len(group) > 1 else None
        if pattern is None:
            out += group
            if len(group) > 1:
                notes.append(f"SAME HEADER: {', '.join(names)} have the same columns, but no file pattern names them "
                             "alone: rename the files, or map one")
            continue
        frame = pd.concat([t.frame for t in group], ignore_index=True)
        out.append(Table(group[0].path, None, frame, pattern, tuple(names)))
    return sorted(out, key=lambda t: t.name), notes


def read_tables(folder: Path) -> tuple[list[Table], list[str]]:
    """Every file of the folder (every visible sheet of a workbook) as a table, in name order; and notes on the
    files that were not read (unreadable, hidden sheets, other kinds of file)."""
    tables, notes = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "~$"))):
        if path.suffix.lower() not in SUFFIXES:
            notes.append(f"NOT READ: {path.name} - not a table file ({', '.join(SUFFIXES)})")
            continue
        sheets: list[str | None] = [None]
        if path.suffix.lower() == ".xlsx":
            from openpyxl import load_workbook

            book = load_workbook(path, read_only=True)
            visible = [ws.title for ws in book.worksheets if ws.sheet_state == "visible"]
            notes += [f"NOT READ: {path.name} sheet {ws.title} - hidden" for ws in book.worksheets
                      if ws.sheet_state != "visible"]
            book.close()
            sheets = visible if len(visible) > 1 else [None]
        read = []
        for sheet in sheets:
            try:
                frame = _read_sheet(path, sheet)
            except Exception as exc:  # noqa: BLE001 - a draft lists an unreadable file and goes on
                notes.append(f"UNREADABLE: {path.name}{f' sheet {sheet}' if sheet else ''} - {exc}")
                continue
            if frame.shape[1] == 0:
                notes.append(f"EMPTY: {path.name}{f' sheet {sheet}' if sheet else ''}")
                continue
            twice = frame.columns[frame.columns.duplicated()]
            if len(twice):
                notes.append(f"CHECK: {path.name}{f' sheet {sheet}' if sheet else ''} names a column twice "
                             f"({', '.join(map(str, twice.unique()))}): only the first of each was looked at")
                frame = frame.loc[:, ~frame.columns.duplicated()]
            read.append(Table(path, sheet, frame))
        if len(read) > 1 and len(read) == len(sheets) and all(list(t.frame.columns) == list(read[0].frame.columns)
                                                             for t in read):
            read = [Table(path, None, pd.concat([t.frame for t in read], ignore_index=True),
                          files=tuple(f"sheet {t.sheet}" for t in read))]
        tables += read
    return tables, notes


# --- the draft --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    """One suggestion: key: value   # why (``active`` False: written commented out, for a person to decide)."""
    key: str
    value: str
    why: str
    active: bool = True


@dataclass
class FileDraft:
    """The suggested mapping of one contract file; ``sections`` hold Lines and comment strings, ``recode`` per
    contract column."""
    contract: str
    table: Table
    why: str
    sections: dict = field(default_factory=lambda: {k: [] for k in ("rename", "long", "tests", "dates", "constants")})
    recode: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    matched: int = 0
    unmatched: int = 0


@dataclass
class Draft:
    folder: Path
    trial: Trial
    files: list[FileDraft]
    notes: list[str]
    tables: int

    def text(self) -> str:
        return draft_text(self)

    def summary(self) -> str:
        return draft_summary(self)


@dataclass
class _Candidate:
    table: Table
    contract: str
    matches: dict  # header -> Match
    long: dict | None = None  # role -> (header, why)

    @property
    def score(self) -> int:
        return len(self.matches) + (2 if self.long else 0)


def _long_layout(table: Table, trial: Trial, matches: dict) -> dict | None:
    """The columns of a long laboratory file (test name, value, unit): role -> (header, why); None if it is not one."""
    links = panel_links(trial)
    roles = {role: {name_key(n) for n in names} for role, names in column_names()["long_labs"].items()}
    frame = table.frame
    best = None
    for h in frame.columns:
        cells = _cells(frame, h)
        if cells.empty or h in matches:
            continue
        counts = _counts(cells)
        known = sum(n for v, n in counts if any(links.find(v)[i] is not None for i in (0, 2)))
        share = known / len(cells)
        named = name_key(h) in roles["test"]
        if share >= 0.5 and known and (best is None or (named, share) > best[0]):
            best = ((named, share), h, f"{known} of {len(cells)} values are laboratory test names or codes "
                                       "(lab_names.yaml or the panel)"
                    + (f'; "{h}" names the test column' if named else ""))
    if best is None:
        return None
    layout = {"test": (best[1], best[2])}
    units = _known_units(trial)
    for role, rule in (("value", "numbers"), ("unit", "units")):
        found = None
        for h in frame.columns:
            if h in matches or any(h == v[0] for v in layout.values()):
                continue
            cells = _cells(frame, h)
            if cells.empty:
                continue
            share = (cells.map(_is_number) if role == "value" else cells.map(lambda u: unit_key(u) in units)).mean()
            named = name_key(split_paren(h)[0]) in roles[role]
            if (named or share >= 0.8) and (found is None or (named, share) > found[0]):
                found = ((named, share), h, (f'"{h}" names the {role} column; ' if named else "") +
                         f"{share:.0%} of its values are {rule}")
        if found is not None:
            layout[role] = (found[1], found[2])
    return layout if "value" in layout else None


def _candidates(table: Table, spec: dict[str, FileSpec], trial: Trial, tables: dict) -> list[_Candidate]:
    out = []
    labels = table.labels
    for name, fspec in spec.items():
        matches, taken = {}, set()
        for h in table.frame.columns:
            m = _match_header(h, labels.get(h), tables[name])
            if m is not None and m.column not in taken:
                matches[h] = m
                taken.add(m.column)
        cand = _Candidate(table, name, matches)
        if name == "labs":
            keep = {h: m for h, m in matches.items() if m.column in ("subject_id", "visit", "lab_date")}
            layout = _long_layout(table, trial, keep)
            if layout is not None:
                cand = _Candidate(table, name, keep, layout)
        out.append(cand)
    return out


def _fits_file(c: _Candidate, spec: FileSpec) -> bool:
    return c.score >= 2 and (c.long is not None or any(m.column in spec.key for m in c.matches.values()))


def _add_values(fd: FileDraft, col: Column, header: str, cells: pd.Series, trial: Trial) -> None:
    """Recodes, date formats and checks that a matched column's values call for."""
    counts = _counts(cells)
    if not counts:
        return
    if col.type == "date":
        guess = date_format(counts)
        if guess is None:
            fd.notes.append(f"CHECK: {header} -> {col.name}: no one date format fits its values ({_shown(counts)})")
        elif guess.format == ISO_DATE:
            fd.sections["dates"].append(f"{col.name}: {guess.why}, the contract's format: nothing to declare")
        else:
            fd.sections["dates"].append(Line(col.name, guess.format, guess.why, guess.sure))
    elif col.type in ("category", "flag") and col.allowed_values(trial):
        lines, unmatched = _recode(col, counts, trial)
        if lines:
            fd.recode.setdefault(col.name, []).extend(Line(v, c, why) for v, c, why in lines)
        if unmatched:
            allowed = col.allowed_values(trial)
            if col.allowed_from == "arms":
                allowed = [f"{a.code} ({a.label})" for a in trial.arms if a.code in allowed]
            fd.recode.setdefault(col.name, []).append(
                f"UNMATCHED values of {header} -> {col.name}: " + ", ".join(f"{v} ({_rows(n)})" for v, n in unmatched) +
                f" - allowed: {', '.join(allowed)}; add them here, or leave out")
    elif col.type in ("number", "integer"):
        bad = [(v, n) for v, n in counts if not _is_number(v)]
        if bad:
            fd.notes.append(f"CHECK: {header} -> {col.name}: values that are not numbers: {_shown(bad)}")


def _unit_note(fd: FileDraft, header: str, test: LabTest, unit: str) -> None:
    """A wide laboratory column whose header names a unit: the panel's (nothing to do), another accepted one (a
    constant <test>_unit), or one the panel does not accept (a note)."""
    if test.factor(unit) == 1.0 and unit_key(unit) in {unit_key(test.unit), ""}:
        return
    if test.factor(unit) is not None:
        fd.sections["constants"].append(Line(f"{test.column}_unit", unit,
                                             f'the header "{header}" gives the unit {unit}, accepted by the panel '
                                             f"(x {test.factor(unit):g} = {test.unit})"))
    else:
        fd.notes.append(f"UNIT: {header} -> {test.column}: the header gives the unit {unit}, which the panel does not "
                        f"accept for {test.code} ({', '.join(test.factors)}) - check, or add it to the trial file's "
                        "units")


def _unmatched_note(header: str, cells: pd.Series, trial: Trial) -> str:
    counts = _counts(cells)
    hints = []
    guess = date_format(counts)
    links = panel_links(trial)
    if guess is not None:
        hints.append(f"dates {guess.format}")
    elif counts and all(name_key(v) in _flag_words() for v, _ in counts) and not all(_is_number(v) for v, _ in counts):
        hints.append("Y/N-like values")
    elif counts and sum(n for v, n in counts if links.find(v) != (None, "", None)) >= 0.5 * len(cells):
        hints.append("laboratory test names")
    hint = f"; looks like {', '.join(hints)}" if hints else ""
    values = f"values: {_shown(counts)}" if counts else "empty"
    return f"UNMATCHED: {header} ({values}{hint}) - decide or leave out"


def _file_draft(c: _Candidate, spec: FileSpec, trial: Trial) -> FileDraft:
    frame = c.table.frame
    cols = {col.name: col for col in spec.columns}
    panel = {t.column: t for t in trial.lab_panel}
    why = (f"one row per laboratory result: {c.score - 2} contract column(s) and a test and value column"
           if c.long else f"{len(c.matches)} of its {frame.shape[1]} columns match the {spec.name} file")
    if c.table.pattern:
        why += f"; {len(c.table.files)} files with these columns, stacked in name order: {', '.join(c.table.files)}"
    elif c.table.files:
        why += f"; its {len(c.table.files)} sheets have these columns and are read as one table, in order: " \
               f"{', '.join(c.table.files)}"
    fd = FileDraft(spec.name, c.table, why)
    long_headers = {v[0] for v in (c.long or {}).values()}
    for h in frame.columns:
        m = c.matches.get(h)
        cells = _cells(frame, h)
        if m is None and h in long_headers:
            continue
        if m is None:
            fd.sections["rename"].append(_unmatched_note(h, cells, trial))
            fd.unmatched += 1
            continue
        fd.matched += 1
        col = cols[m.column]
        if c.long:
            fd.sections["long"].append(Line(m.column, h, m.why))
        elif h != m.column:
            fd.sections["rename"].append(Line(h, m.column, m.why))
        paren = split_paren(h)[1]
        if m.column in panel and paren and unit_key(paren) in _known_units(trial):
            _unit_note(fd, h, panel[m.column], paren)
        _add_values(fd, col, h, cells, trial)
    if c.long:
        for role in ("test", "value", "unit"):
            if role in c.long:
                fd.sections["long"].append(Line(role, *c.long[role]))
                fd.matched += 1
        _tests(fd, c, trial)
    same = [h for h, m in c.matches.items() if h == m.column]
    if same and not c.long:
        fd.sections["rename"].insert(0, f"{len(same)} column(s) have the contract's names: nothing to rename")
    found = set(m.column for m in c.matches.values())
    missing = [col.name for col in spec.columns if col.name not in found and not col.optional_column
               and not (c.long and col.name in panel) and not col.name.endswith("_unit")]
    if missing:
        fd.notes.append(f"NOT FOUND: contract column(s) without a source column: {', '.join(missing)} - rename a "
                        "column, add a constant, or leave out if the contract does not need it")
    return fd


def _tests(fd: FileDraft, c: _Candidate, trial: Trial) -> None:
    """``tests:`` for the distinct test names of a long laboratory file, and the units seen per test."""
    links = panel_links(trial)
    frame = c.table.frame
    test_h = c.long["test"][0]
    unit_h = c.long.get("unit", (None,))[0]
    order = {t.column: i for i, t in enumerate(trial.lab_panel)}
    lines, outside, unknown = [], [], []
    for value, n in _counts(_cells(frame, test_h)):
        test, why, entry = links.find(value)
        if test is not None:
            lines.append((order[test.column], value, Line(value, test.column, f"{why} ({_rows(n)})")))
            if unit_h is not None:
                rows = frame[test_h].astype(str).str.strip() == value
                for unit, k in _counts(_cells(frame[rows], unit_h)):
                    if test.factor(unit) is None:
                        fd.notes.append(f"UNIT: {value} -> {test.column}: unit {unit} ({_rows(k)}) is not accepted by "
                                        f"the panel ({', '.join(test.factors)}) - check, or add it to the trial file")
        elif entry is not None:
            outside.append(f"{value} ({entry}, {_rows(n)})")
        else:
            unknown.append(f"{value} ({_rows(n)})")
    fd.sections["tests"] += [line for _, _, line in sorted(lines, key=lambda x: (x[0], x[1]))]
    if outside:
        fd.sections["tests"].append("NOT IN THE PANEL (left out unless the trial file adds them): "
                                    + ", ".join(outside))
    if unknown:
        fd.sections["tests"].append("UNMATCHED test names: " + ", ".join(unknown) + " - map them to a panel column, "
                                    "or leave out")
    if c.long.get("unit") is None:
        fd.notes.append("NOT FOUND: no unit column: every result is read in the panel's unit")


def suggest_mapping(folder: str | Path, trial: Trial) -> Draft:
    """The draft mapping of an export folder for a trial (write it with ``draft_text``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such export folder")
    spec = export_spec(trial)
    tables, notes = read_tables(folder)
    read = len(tables)
    tables, same = stack_same_header(tables, folder)
    notes += same
    names = {n: _column_table(s, trial) for n, s in spec.items()}
    candidates = [c for t in tables for c in _candidates(t, spec, trial, names) if _fits_file(c, spec[c.contract])]
    order = list(spec)
    candidates.sort(key=lambda c: (-c.score, order.index(c.contract), c.table.name))
    chosen: dict[str, _Candidate] = {}
    placed: set[str] = set()
    for c in candidates:
        if c.contract not in chosen and c.table.name not in placed:
            chosen[c.contract] = c
            placed.add(c.table.name)
    for t in tables:
        if t.name in placed:
            continue
        best = next((c for c in candidates if c.table.name == t.name), None)
        fit = (f"; best fit: {best.contract} ({best.score} columns), taken by {chosen[best.contract].table.name}"
               if best else "")
        notes.append(f"UNMATCHED FILE: {t.name} (columns: {', '.join(map(str, t.frame.columns[:8]))}"
                     f"{', ...' if t.frame.shape[1] > 8 else ''}){fit} - decide or leave out")
    files = [_file_draft(chosen[n], spec[n], trial) for n in order if n in chosen]
    for n in order:
        if n not in chosen and not spec[n].optional:
            notes.append(f"NOT FOUND: no file looks like the {n} file - name its source here, or it is read as "
                         f"{n}.csv/.xlsx")
    return Draft(folder, trial, files, sorted(notes), read)


# --- writing ----------------------------------------------------------------------------------------

def scalar(text) -> str:
    """A YAML scalar for a text: plain where YAML reads it back as the same text, else double-quoted."""
    s = str(text)
    plain = bool(s) and s == s.strip() and "#" not in s and ": " not in s and not s.endswith(":") and "\n" not in s
    if plain:
        try:
            plain = yaml.safe_load(f"{s}: {s}") == {s: s}
        except yaml.YAMLError:
            plain = False
    return s if plain else json.dumps(s, ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(str(text).split())


def _lines(items: list, indent: int) -> tuple[list[str], bool]:
    """YAML lines of a section's items (Lines and comments), and whether any is an active suggestion."""
    pad = " " * indent
    out, active = [], False
    for item in items:
        if isinstance(item, Line):
            line = f"{scalar(item.key)}: {scalar(item.value)}   # {_comment(item.why)}"
            out.append(pad + (line if item.active else "# " + line))
            active |= item.active
        else:
            out.append(f"{pad}# {_comment(item)}")
    return out, active


def _section(name: str, items: list, indent: int) -> list[str]:
    """A key with its items; with no active item, the comments alone (a key with nothing under it is not written)."""
    body, active = _lines(items, indent + 2)
    if not active:
        return [" " * indent + line.lstrip() if line.lstrip().startswith("#") else line for line in body]
    return [" " * indent + f"{name}:"] + body


def draft_text(draft: Draft) -> str:
    """The draft as YAML text with a reason on every suggestion (yaml.safe_load reads it as a mapping file)."""
    trial = draft.trial
    out = [f"# DRAFT export mapping for {draft.folder.name}/ (trial {trial.id}), written by python -m helpers map "
           "--suggest.",
           "# Review every line: each suggestion says why it was made; UNMATCHED, CHECK and NOT FOUND lines need a",
           "# decision; a commented-out suggestion is unsure: uncomment it once checked. Validate the export with it.",
           f"# {draft.tables} table(s) read, {len(draft.files)} proposed as contract files."]
    out += [f"# {_comment(n)}" for n in draft.notes]
    if not draft.files:
        return "\n".join(out + ["files: {}", ""])
    out.append("files:")
    for fd in draft.files:
        out.append(f"  {fd.contract}:")
        out.append(f"    source: {scalar(fd.table.source)}   # {_comment(fd.why)}")
        if fd.table.sheet:
            out.append(f"    sheet: {scalar(fd.table.sheet)}   # the workbook's sheet that holds this table")
        for key in ("long", "tests", "rename"):
            out += _section(key, fd.sections[key], 4)
        recode = []
        order = export_spec(trial)[fd.contract].column_names
        for column in sorted(fd.recode, key=order.index):
            body, active = _lines(fd.recode[column], 8)
            recode += ([f"      {column}:"] + body) if active else [line[2:] for line in body]
        if any(not line.lstrip().startswith("#") for line in recode):
            out += ["    recode:"] + recode
        else:
            out += [line[2:] for line in recode]
        for key in ("dates", "constants"):
            out += _section(key, fd.sections[key], 4)
        out += [f"    # {_comment(n)}" for n in fd.notes]
    return "\n".join(out) + "\n"


def draft_summary(draft: Draft) -> str:
    """A few lines for the terminal: files proposed, columns matched and not, notes to act on."""
    lines = [f"{draft.folder}: {draft.tables} table(s) read, {len(draft.files)} proposed as contract files"]
    for fd in draft.files:
        tests = sum(isinstance(x, Line) for x in fd.sections["tests"])
        extra = f", {tests} test name(s) mapped" if fd.sections["long"] else ""
        lines.append(f"  {fd.contract} <- {fd.table.name}: {fd.matched} column(s) matched, {fd.unmatched} "
                     f"unmatched{extra}")
    matched, unmatched = sum(f.matched for f in draft.files), sum(f.unmatched for f in draft.files)
    lines.append(f"  {matched} column(s) matched, {unmatched} unmatched; {len(draft.notes)} note(s) on files")
    return "\n".join(lines)


def write_draft(folder: str | Path, trial: Trial, out: str | Path, force: bool = False) -> Draft:
    """Write the draft mapping to ``out`` (never over an existing file unless ``force``)."""
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists: not overwritten (--force to replace it)")
    draft = suggest_mapping(folder, trial)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(draft_text(draft), encoding="utf-8")
    return draft
