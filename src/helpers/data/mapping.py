"""The export mapping: how a site's own files become the data contract's files, declared in YAML, never by editing them.

A mapping names, per contract file, the site's source file (name or pattern, and sheet), column renames (any
language; a SAS or SPSS column may be named by its label), value recodes, date formats (strptime, or Excel serial
days), constants for columns the site does not have, and, for laboratory results exported one row per result,
which columns hold participant, visit, date, test, value and unit, and which test names or codes are which panel
test. The mapped tables are text cells in the contract's shape, checked by the contract as any export is; every
problem found on them is reported at the raw file's own row and column (``Origin.locate``), and what the mapping
did is listed (``Effect``) for the validation report.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from helpers.data.reading import Problem, read_raw, sheet_names
from helpers.data.schema import FileSpec, export_spec
from helpers.trial import Trial

EXCEL = "excel"
EXCEL_EPOCH = pd.Timestamp("1899-12-30")
LONG_ROLES = ("subject_id", "visit", "lab_date", "test", "value", "unit")
LONG_REQUIRED = LONG_ROLES[:5]
FILE_KEYS = ("source", "sheet", "rename", "recode", "dates", "constants", "long", "tests")
_ISO = r"^\d{4}-\d{2}-\d{2}"
_ROW = re.compile(r"\brow (\d+)\b")


class MappingError(ValueError):
    """A mapping file that cannot be used; names the file and every problem by its key path."""

    def __init__(self, path, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(f"{path}: {len(problems)} problem(s) in the export mapping\n" +
                         "\n".join(f"  {p}" for p in problems))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML whose mappings may not repeat a key (PyYAML keeps the last silently: a test mapped twice would vanish)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def test_key(name) -> str:
    """How a test name or code is compared: Unicode NFKC, spaces trimmed, letter case ignored."""
    return unicodedata.normalize("NFKC", str(name)).strip().casefold()


@dataclass(frozen=True)
class FileMapping:
    """One contract file's mapping (see the module docstring); ``tests`` is keyed by ``test_key``."""
    name: str
    source: str
    sheet: str | None = None
    rename: dict = field(default_factory=dict)
    recode: dict = field(default_factory=dict)
    dates: dict = field(default_factory=dict)
    constants: dict = field(default_factory=dict)
    long: dict | None = None
    tests: dict = field(default_factory=dict)
    test_names: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExportMapping:
    path: Path
    sha256: str
    files: dict[str, FileMapping]


@dataclass(frozen=True)
class Effect:
    """One thing the mapping did, for the validation report (``column`` as the site wrote it, ``target`` the contract
    column it became)."""
    file: str
    source: str
    action: str
    column: str
    detail: str
    count: int
    target: str = ""


EFFECT_COLUMNS = ["file", "source", "action", "column", "detail", "count"]


def effects_frame(effects: list[Effect]) -> pd.DataFrame:
    return pd.DataFrame([(e.file, e.source, e.action, e.column, e.detail, e.count) for e in effects],
                        columns=EFFECT_COLUMNS)


# --- the mapping file ----------------------------------------------------------------------------

def _text_map(value, where: str, problems: list[str]) -> dict:
    if not isinstance(value, dict):
        problems.append(f"{where} must be a mapping, got {value!r}")
        return {}
    bad = [k for k, v in value.items() if isinstance(v, (dict, list)) or v is None]
    problems += [f"{where}.{k} must be a single value, got {value[k]!r}" for k in bad]
    return {str(k).strip(): str(v).strip() for k, v in value.items() if k not in bad}


def date_format_problem(fmt: str) -> str | None:
    """Why ``fmt`` cannot read dates (None when it can): `excel`, or a strptime format with year, month and day."""
    if fmt == EXCEL:
        return None
    if not all(d in fmt for d in ("%d", "%Y")) or not any(d in fmt for d in ("%m", "%b", "%B")):
        return f"{fmt!r} is not a date format: it needs a day (%d), a month (%m, %b or %B) and a year (%Y), or is `excel`"
    probe = dt.datetime(2031, 12, 27, 13, 45, 56)
    try:
        back = dt.datetime.strptime(probe.strftime(fmt), fmt)
    except ValueError as exc:
        return f"{fmt!r} is not a date format: {exc}"
    return None if back.date() == probe.date() else f"{fmt!r} does not read back the dates it writes"


def _file_mapping(name: str, raw, spec: FileSpec, trial: Trial, problems: list[str]) -> FileMapping | None:
    where = f"files.{name}"
    if not isinstance(raw, dict):
        problems.append(f"{where} must be a mapping of {', '.join(FILE_KEYS)}, got {raw!r}")
        return None
    unknown = [str(k) for k in raw if k not in FILE_KEYS]
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(FILE_KEYS)})")
    if not raw.get("source"):
        problems.append(f"{where}.source is missing: the site's file name or pattern")
    columns = spec.column_names
    known = f"(columns of {name}: {', '.join(columns)})"
    rename = _text_map(raw.get("rename") or {}, f"{where}.rename", problems)
    constants = _text_map(raw.get("constants") or {}, f"{where}.constants", problems)
    dates = _text_map(raw.get("dates") or {}, f"{where}.dates", problems)
    recode_raw = raw.get("recode") or {}
    recode = {}
    if not isinstance(recode_raw, dict):
        problems.append(f"{where}.recode must be a mapping of column: {{value as written: contract value}}")
    else:
        recode = {str(k).strip(): _text_map(v, f"{where}.recode.{k}", problems) for k, v in recode_raw.items()}
    long, tests, test_names = None, {}, {}
    if raw.get("long") is not None:
        if name != "labs":
            problems.append(f"{where}.long: only labs may be exported one row per result")
        long = _text_map(raw["long"], f"{where}.long", problems)
        problems += [f"{where}.long.{r} is missing: the column that holds the {r.replace('_', ' ')}"
                     for r in LONG_REQUIRED if r not in long]
        problems += [f"{where}.long: unknown part(s) {', '.join(sorted(set(long) - set(LONG_ROLES)))} "
                     f"(known: {', '.join(LONG_ROLES)})"] if set(long) - set(LONG_ROLES) else []
        if rename:
            problems.append(f"{where}.rename: labs exported one row per result take their columns from `long`")
        panel = {t.column: t.column for t in trial.lab_panel} | {t.code: t.column for t in trial.lab_panel}
        for written, target in _text_map(raw.get("tests") or {}, f"{where}.tests", problems).items():
            key = test_key(written)
            if target not in panel:
                problems.append(f"{where}.tests: {written!r} -> {target!r}: {target!r} is not a test of the lab panel "
                                f"(known: {', '.join(t.column for t in trial.lab_panel)})")
            elif key in tests and tests[key] != panel[target]:
                problems.append(f"{where}.tests: {written!r} is mapped twice ({tests[key]}, {panel[target]})")
            else:
                tests[key], test_names[key] = panel[target], written
        if not tests:
            problems.append(f"{where}.tests is missing or empty: which test names or codes are which panel test")
    elif raw.get("tests") is not None:
        problems.append(f"{where}.tests: test names are mapped only for labs exported one row per result (`long`)")
    targets = list(rename.values()) + ([r for r in ("subject_id", "visit", "lab_date") if r in long] if long else [])
    for target in sorted(set(rename.values()) - set(columns)):
        sources = [s for s, t in rename.items() if t == target]
        problems.append(f"{where}.rename: {', '.join(sources)} -> {target}: unknown column {target} {known}")
    roles = set(LONG_ROLES) if long else set()
    for key, section in (("constants", constants), ("dates", dates), ("recode", recode)):
        for column in sorted(set(section) - set(columns) - roles):
            problems.append(f"{where}.{key}: unknown column {column} {known}")
    sources_of: dict[str, list[str]] = {}
    for source, target in rename.items():
        sources_of.setdefault(target, []).append(f"rename {source}")
    for target in targets[len(rename):]:
        sources_of.setdefault(target, []).append(f"long.{target} {long[target]}")
    for column in constants:
        sources_of.setdefault(column, []).append("constants")
    for column, given in sources_of.items():
        if len(given) > 1:
            problems.append(f"{where}: two sources for column {column}: {'; '.join(given)}")
    types = {c.name: c.type for c in spec.columns} | {"lab_date": "date"}
    for column, fmt in dates.items():
        if column in types and types[column] != "date":
            problems.append(f"{where}.dates.{column}: {column} is a {types[column]} column, not a date")
        why = date_format_problem(fmt)
        if why:
            problems.append(f"{where}.dates.{column}: {why}")
    if raw.get("sheet") is not None and not isinstance(raw["sheet"], (str, int)):
        problems.append(f"{where}.sheet must be a sheet name, got {raw['sheet']!r}")
    return FileMapping(name, str(raw.get("source") or ""), None if raw.get("sheet") is None else str(raw["sheet"]),
                       rename, recode, dates, constants, long, tests, test_names)


def load_mapping(path: str | Path, trial: Trial) -> ExportMapping:
    """The export mapping in ``path``, checked against the contract and the trial's panel; raises MappingError
    listing every problem (unknown file, column or test; two sources for one column; a test mapped twice; a key
    written twice; a date format that cannot read dates)."""
    path = Path(path)
    if not path.is_file():
        raise MappingError(path, ["the mapping file does not exist"])
    data = path.read_bytes()
    try:
        raw = yaml.load(data.decode("utf-8"), Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MappingError(path, [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("files"), dict):
        raise MappingError(path, ["the mapping must have `files:`, a mapping of contract file name -> its mapping"])
    problems = [f"unknown top-level key(s) {', '.join(map(str, set(raw) - {'files', 'description'}))} "
                "(known: files, description)"] if set(raw) - {"files", "description"} else []
    specs = export_spec(trial)
    files = {}
    for name, section in raw["files"].items():
        if name not in specs:
            problems.append(f"files.{name}: unknown contract file (known: {', '.join(specs)})")
            continue
        mapped = _file_mapping(str(name), section, specs[name], trial, problems)
        if mapped is not None:
            files[str(name)] = mapped
    if problems:
        raise MappingError(path, problems)
    return ExportMapping(path, hashlib.sha256(data).hexdigest(), files)


# --- applying it ---------------------------------------------------------------------------------

@dataclass
class Origin:
    """Where each cell of a mapped table came from, to report a problem at the raw file's own row and column.

    ``token`` is the name the contract's checks give the mapped table; rows of the mapped table are numbered as
    the contract numbers them (index + 2)."""
    token: str
    files: list[str]
    row_file: np.ndarray
    row_number: np.ndarray
    columns: dict[str, str]
    cells: dict[tuple[int, str], tuple[str, int, str]] = field(default_factory=dict)
    recodes: dict[str, dict] = field(default_factory=dict)

    def _row_text(self, row: int) -> str:
        """Another row of the same mapped table, named in a message, as the raw file numbers it."""
        k = row - 2
        if not 0 <= k < len(self.row_file):
            return f"row {row}"
        single = len(set(self.row_file)) == 1
        return f"row {int(self.row_number[k])}" + ("" if single else f" of {self.row_file[k]}")

    def _column(self, column: str) -> str:
        return ",".join(self.columns.get(c, c) for c in column.split(","))

    def locate(self, p):
        """``p`` (a Problem on the mapped table) at the raw file's row and column."""
        message = _ROW.sub(lambda m: self._row_text(int(m.group(1))), p.message)
        if p.rule == "allowed" and p.column in self.recodes:
            known = ", ".join(f"{k} -> {v}" for k, v in self.recodes[p.column].items())
            message += f"; the export mapping recodes {known}"
        if p.column and any(c not in self.columns for c in p.column.split(",")):
            message += " (the mapping gives this contract column no source)"
        if p.row is None or not 0 <= p.row - 2 < len(self.row_file):
            return Problem(", ".join(self.files), None, p.column and self._column(p.column), p.rule, message)
        k = p.row - 2
        if p.column and (k, p.column) in self.cells:
            file, row, column = self.cells[(k, p.column)]
            return Problem(file, row, column, p.rule, message)
        return Problem(str(self.row_file[k]), int(self.row_number[k]), p.column and self._column(p.column), p.rule,
                       message)


@dataclass
class _Read:
    """The source rows of one contract file: text cells (columns as the mapping names them), with each row's file
    and row number."""
    frame: pd.DataFrame
    file: np.ndarray
    row: np.ndarray
    columns: dict[str, str]


def source_files(folder: Path, fm: FileMapping) -> list[Path]:
    """The export's files that the mapping's ``source`` names (a name or a glob pattern), in name order."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and fnmatch.fnmatch(p.name, fm.source))


def _display(path: Path, fm: FileMapping) -> str:
    return f"{path.name} (sheet {fm.sheet})" if fm.sheet else path.name


def _resolve(raw: pd.DataFrame, wanted: str) -> str | None:
    """The raw column named ``wanted``, or whose SAS/SPSS label is ``wanted``."""
    if wanted in raw.columns:
        return wanted
    labels = raw.attrs.get("labels", {})
    return next((c for c in raw.columns if str(labels.get(c, "")).strip() == wanted), None)


def _read_sources(paths: list[Path], fm: FileMapping, contract: list[str], warnings, errors) -> _Read | None:
    """Every source file read, its columns chosen and named as the mapping names them (contract columns, or the
    long layout's parts; a column already named as the contract names it is taken as it is); columns the mapping
    does not use are left out with a warning."""
    wanted = dict(fm.long) if fm.long else {target: source for source, target in fm.rename.items()}
    frames, files, rows, columns = [], [], [], {}
    for path in paths:
        shown = _display(path, fm)
        raw = read_raw(path, warnings, errors, sheet=fm.sheet)
        if raw.shape[1] == 0:
            continue
        raw.columns = [str(c).strip() for c in raw.columns]
        chosen = {}
        for name, source in wanted.items():
            column = _resolve(raw, source)
            if column is None:
                errors.append(Problem(shown, 1, source, "mapping_column",
                                      f"column {source!r} named in the mapping is not in the file (its columns: "
                                      f"{', '.join(raw.columns)})"))
            else:
                chosen[name] = column
        taken = set(chosen.values()) | set(fm.rename.values()) | set(fm.constants)
        passed = [] if fm.long else [c for c in raw.columns if c in contract and c not in taken]
        unused = [c for c in raw.columns if c not in chosen.values() and c not in passed]
        warnings += [Problem(shown, 1, c, "extra_column", "column is not in the mapping: kept out of the analysis")
                     for c in unused]
        if len(chosen) < len(wanted):
            continue
        frame = pd.DataFrame({name: raw[c] for name, c in chosen.items()} | {c: raw[c] for c in passed},
                             index=raw.index)
        columns.update({name: c for name, c in chosen.items()} | {c: c for c in passed})
        frames.append(frame.reset_index(drop=True))
        files.append(np.full(len(frame), shown, dtype=object))
        rows.append(raw.index.to_numpy() + 2)
    if not frames:
        return None
    return _Read(pd.concat(frames, ignore_index=True).fillna(""), np.concatenate(files), np.concatenate(rows), columns)


def _recode(frame: pd.DataFrame, fm: FileMapping, read: _Read, effects: list[Effect], source: str) -> pd.DataFrame:
    """Declared recodes applied (a value as written, spaces trimmed, becomes the contract's), counted by value."""
    for column, codes in fm.recode.items():
        if column not in frame:
            continue
        text = frame[column].astype(str).str.strip()
        hit = text.isin(list(codes))
        for value, count in text[hit].value_counts(sort=False).sort_index().items():
            effects.append(Effect(fm.name, source, "recoded", read.columns.get(column, column),
                                  f"{value} -> {codes[value]}", int(count), column))
        frame[column] = text.where(~hit, text.map(codes))
    return frame


def parse_dates(text: pd.Series, fmt: str) -> pd.Series:
    """Dates written in ``fmt`` (a strptime format, or `excel`: serial day numbers, a fraction is the time of day)
    as YYYY-MM-DD; NaT where a cell does not fit."""
    if fmt == EXCEL:
        days = pd.to_numeric(text, errors="coerce")
        days = days.where((days >= 1) & (days < 2958466))
        return EXCEL_EPOCH + pd.to_timedelta(np.floor(days), unit="D")
    return pd.to_datetime(text, format=fmt, errors="coerce")


def _dates(frame: pd.DataFrame, fm: FileMapping, read: _Read, effects: list[Effect], errors: list, codes: set[str],
           source: str) -> pd.DataFrame:
    """Declared date formats applied: each cell that fits is written YYYY-MM-DD; one that does not is an error
    at its raw row and column (the cell is left as written, and not reported again by the contract)."""
    for column, fmt in fm.dates.items():
        if column not in frame:
            continue
        text = frame[column].astype(str).str.strip()
        todo = (text != "") & ~text.str.upper().isin(codes)
        parsed = parse_dates(text.where(todo), fmt)
        iso = todo & parsed.isna() & pd.to_datetime(text.str[:10].where(text.str.match(_ISO)), format="%Y-%m-%d",
                                                    errors="coerce").notna()
        bad = todo & parsed.isna() & ~iso
        for i in np.flatnonzero(bad.to_numpy()):
            errors.append(Problem(str(read.file[i]), int(read.row[i]), read.columns.get(column, column), "mapping_date",
                                  f"{text.iloc[i]!r} is not a date written {fmt} (the mapping's format for {column})"))
        good = todo & parsed.notna()
        frame[column] = text.where(~good, parsed.dt.strftime("%Y-%m-%d"))
        shown = "Excel serial day numbers" if fmt == EXCEL else fmt
        effects.append(Effect(fm.name, source, "dates parsed", read.columns.get(column, column),
                              f"{shown} -> YYYY-MM-DD", int(good.sum())))
        if iso.any():
            effects.append(Effect(fm.name, source, "dates parsed", read.columns.get(column, column),
                                  "already YYYY-MM-DD (a workbook's date cells)", int(iso.sum())))
    return frame


def _pivot(frame: pd.DataFrame, fm: FileMapping, read: _Read, trial: Trial, contract: list[str], effects, warnings,
           errors, source: str):
    """Long laboratory rows (one per result) as the contract's wide table (one row per sample: participant,
    visit and date; one column per panel test, and its unit), with the raw row of every cell."""
    key = ["subject_id", "visit", "lab_date"]
    test = frame["test"].astype(str).map(test_key)
    panel_column = test.map(fm.tests)
    for written, rows in frame["test"][panel_column.isna()].groupby(test[panel_column.isna()], sort=True):
        first = rows.index[0]
        name = str(rows.iloc[0]).strip() or "(empty)"
        warnings.append(Problem(str(read.file[first]), int(read.row[first]), read.columns["test"], "unmapped_test",
                                f"test {name!r} is not in the mapping: {len(rows)} row(s) left out"))
        effects.append(Effect(fm.name, source, "left out", read.columns["test"], f"test {name} (not mapped)", len(rows)))
    kept = frame[panel_column.notna()].assign(_column=panel_column[panel_column.notna()])
    parts = [kept[k].astype(str).str.strip() for k in key]
    sample = parts[0] + "\x1f" + parts[1] + "\x1f" + parts[2]
    order = pd.unique(sample)
    number = pd.Series(np.arange(len(order)), index=order)
    kept = kept.assign(_sample=sample.map(number).to_numpy())
    twice = kept.duplicated(["_sample", "_column"], keep="first")
    for i in kept.index[twice]:
        first = kept.index[(kept["_sample"] == kept.at[i, "_sample"]) & (kept["_column"] == kept.at[i, "_column"])][0]
        errors.append(Problem(str(read.file[i]), int(read.row[i]), read.columns["test"], "mapping_duplicate_result",
                              f"a second result of {kept.at[i, '_column']} for one sample (participant, visit, date) "
                              f"after row {int(read.row[first])}: keep one"))
    kept = kept[~twice]
    firsts = kept.groupby("_sample", sort=True).head(1)
    wide = pd.DataFrame({k: firsts[k].to_numpy() for k in key})
    columns = {k: read.columns[k] for k in key}
    cells = {}
    for t in trial.lab_panel:
        rows = kept[kept["_column"] == t.column]
        values = pd.Series("", index=wide.index, dtype=object)
        values[rows["_sample"].to_numpy()] = rows["value"].astype(str).to_numpy()
        wide[t.column] = values
        has_unit = "unit" in fm.long and f"{t.column}_unit" in contract
        if "unit" in fm.long and not has_unit:
            for i in rows.index[rows["unit"].map(t.factor).isna()]:
                errors.append(Problem(str(read.file[i]), int(read.row[i]), read.columns["unit"], "allowed",
                                      f"{rows.at[i, 'unit']!r} is not the unit of {t.column} ({t.unit}), and the "
                                      "trial file accepts no other"))
        if has_unit:
            units = pd.Series("", index=wide.index, dtype=object)
            units[rows["_sample"].to_numpy()] = rows["unit"].astype(str).to_numpy()
            wide[f"{t.column}_unit"] = units
        for s, i in zip(rows["_sample"].to_numpy(), rows.index):
            cells[(int(s), t.column)] = (str(read.file[i]), int(read.row[i]), read.columns["value"])
            if has_unit:
                cells[(int(s), f"{t.column}_unit")] = (str(read.file[i]), int(read.row[i]), read.columns["unit"])
        if "unit" in fm.long and len(rows):
            for unit, count in rows["unit"].astype(str).str.strip().value_counts(sort=False).sort_index().items():
                effects.append(Effect(fm.name, source, "unit", read.columns["unit"],
                                      f"{t.column}: {unit or '(empty: the panel unit)'}", int(count)))
        columns[t.column] = read.columns["value"]
        if has_unit:
            columns[f"{t.column}_unit"] = read.columns["unit"]
    effects.append(Effect(fm.name, source, "pivoted", read.columns["test"],
                          f"{len(kept)} result rows -> {len(wide)} samples (one row per participant, visit and date)",
                          len(kept)))
    first_index = firsts.index.to_numpy()
    return wide, read.file[first_index], read.row[first_index], columns, cells


def apply_mapping(folder: Path, fm: FileMapping, spec: FileSpec, trial: Trial, warnings: list, errors: list,
                  effects: list[Effect], codes: set[str]) -> tuple[pd.DataFrame | None, Origin | None]:
    """The contract-shaped text table of one contract file from the site's files, and the origin of its cells;
    (None, None) when no file matches the source (an error unless the contract file is optional)."""
    paths = source_files(folder, fm)
    token = f"<{fm.name}>"
    if not paths:
        if not spec.optional:
            errors.append(Problem(fm.source, None, None, "missing_file",
                                  f"no file of the export matches the mapping's source for {fm.name} ({fm.source!r})"))
        return None, None
    source = ", ".join(_display(p, fm) for p in paths)
    read = _read_sources(paths, fm, spec.column_names, warnings, errors)
    if read is None:
        return None, Origin(token, [source], np.array([], dtype=object), np.array([], dtype=int), {})
    for p in paths:
        rows = int((read.file == _display(p, fm)).sum())
        effects.append(Effect(fm.name, _display(p, fm), "read", "", f"{rows} rows", rows))
        if fm.sheet:
            effects += [Effect(fm.name, p.name, "left out", "", f"sheet {other} (the mapping reads sheet {fm.sheet})", 0)
                        for other in sheet_names(p) if other != fm.sheet]
    frame = _recode(read.frame.copy(), fm, read, effects, source)
    frame = _dates(frame, fm, read, effects, errors, codes, source)
    if fm.long:
        frame, files, rows, columns, cells = _pivot(frame, fm, read, trial, spec.column_names, effects, warnings, errors, source)
    else:
        files, rows, columns, cells = read.file, read.row, {n: read.columns[n] for n in frame.columns}, {}
        for source_column, target in fm.rename.items():
            if target != source_column:
                effects.append(Effect(fm.name, source, "renamed", read.columns.get(target, source_column),
                                      f"-> {target}", len(frame)))
    for column, value in fm.constants.items():
        frame[column] = value
        columns[column] = f"(constant {value!r} from the mapping)"
        effects.append(Effect(fm.name, source, "constant", column, f"= {value}", len(frame)))
    return frame.reset_index(drop=True).astype(str), Origin(token, [source], files, rows, columns, cells, fm.recode)
