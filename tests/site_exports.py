"""Site exports in their own shape, built from a canonical (contract-shaped) export, for the export-mapping tests.

Three sites: a Chinese hospital (Chinese headers and codes, DD/MM/YYYY dates, a workbook with a notes sheet, labs
long with a unit per row), an EDC that delivers labs as an SDTM-like LB domain, and one that delivers SAS transport
files. Each builder reads its static mapping (tests/fixtures/site_exports/<site>.mapping.yaml, also the
documentation's example) and writes the files it describes by running it backwards: contract column -> the site's
header, contract value -> the site's code, date -> the declared format. The mapping is the one statement of the
site's shape; read forwards by the engine, the files must give back the canonical export exactly.
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import yaml

from helpers.data.schema import export_spec
from helpers import paths
from helpers.trial import Trial, load_trial

MAPPINGS = Path(__file__).parent / "fixtures" / "site_exports"
CHINESE_MAPPING = MAPPINGS / "chinese.mapping.yaml"
SDTM_MAPPING = MAPPINGS / "sdtm_lb.mapping.yaml"
XPT_MAPPING = MAPPINGS / "xpt.mapping.yaml"
EXCEL_EPOCH = dt.date(1899, 12, 30)  # day 0 of Excel's 1900 date system (its day 60 is the fictitious 29/02/1900)
CHINESE_NOTES_SHEET = "说明"
CHINESE_NOTES = ["本表由医院信息系统导出。", "是/否：是否符合该标准。", "出生日期为 Excel 日期序号。"]
# The Chinese laboratory system writes these units (unit_key makes μ and u one letter).
CHINESE_UNITS = {"umol/L": "μmol/L", "1": ""}
# Reference ranges as the laboratory prints them (per test and unit): not used by the mapping.
REFERENCE_RANGES = {("alt", "U/L"): "7-40", ("ast", "U/L"): "13-35", ("alp", "U/L"): "35-100",
                    ("tbil", "μmol/L"): "3.4-20.5", ("tbil", "mg/dL"): "0.2-1.2", ("alb", "g/L"): "40-55",
                    ("pt", "s"): "9.4-12.5", ("inr", ""): "0.8-1.2", ("creat", "μmol/L"): "41-81",
                    ("sodium", "mmol/L"): "137-147"}
MG_DL_EVERY = 3  # every third sample with an exact conversion reports total bilirubin in mg/dL
SDTM_TESTS_NAMES = {"alt": "Alanine Aminotransferase", "ast": "Aspartate Aminotransferase",
                    "alp": "Alkaline Phosphatase", "tbil": "Bilirubin", "alb": "Albumin", "pt": "Prothrombin Time",
                    "inr": "Prothrombin Intl. Normalized Ratio", "creat": "Creatinine", "sodium": "Sodium"}


def load(path: Path) -> dict:
    """A mapping file as plain data (the builders' reading, independent of the engine's)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))["files"]


def canonical_tables(canonical: Path) -> dict[str, pd.DataFrame]:
    """The canonical export's files as text cells (empty string for an empty cell), by contract file name."""
    return {p.stem: pd.read_csv(p, dtype=str, keep_default_na=False, na_filter=False)
            for p in sorted(Path(canonical).glob("*.csv"))}


def backwards(pairs: dict) -> dict:
    """source -> contract turned into contract -> source (the first source of each contract value)."""
    out: dict = {}
    for source, target in pairs.items():
        out.setdefault(target, source)
    return out


def sample_time(i: int) -> dt.time:
    """A deterministic time of day for the ``i``-th record (07:30 to 11:20): the site writes date-times."""
    minutes = 7 * 60 + 30 + (i * 10) % 240
    return dt.time(minutes // 60, minutes % 60)


def write_date(text: str, fmt: str, i: int):
    """An ISO date as the site writes it: ``excel`` (a day number), or a strptime format (a time where it has one)."""
    if text == "":
        return ""
    day = dt.date.fromisoformat(text)
    if fmt == "excel":
        return (day - EXCEL_EPOCH).days
    return dt.datetime.combine(day, sample_time(i)).strftime(fmt)


def site_frame(table: pd.DataFrame, spec: dict, every_column: bool = True) -> pd.DataFrame:
    """A contract table in the site's shape by one file's mapping (rename, recode, dates, constants) read backwards.

    A constant's column is dropped after checking that it holds the constant; ``every_column``: each contract
    column must have a source name (the site names all its columns its own way)."""
    out = table.copy()
    for column, value in (spec.get("constants") or {}).items():
        held = set(out[column])
        if held != {str(value)}:
            raise ValueError(f"{column}: the canonical values {sorted(held)} are not the constant {value!r}")
        out = out.drop(columns=column)
    for column, codes in (spec.get("recode") or {}).items():
        site = backwards(codes)
        unknown = set(out[column]) - set(site) - {""}
        if unknown:
            raise ValueError(f"{column}: no site code for {sorted(unknown)}")
        out[column] = out[column].map(lambda v: site.get(v, v))
    for column, fmt in (spec.get("dates") or {}).items():
        out[column] = [write_date(v, str(fmt), i) for i, v in enumerate(out[column])]
    names = backwards(spec.get("rename") or {})
    if every_column and set(out.columns) - set(names):
        raise ValueError(f"no site name for {sorted(set(out.columns) - set(names))}")
    return out.rename(columns=names)


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path


def exact_text(value: str, factor: float) -> str | None:
    """The shortest text ``s`` of ``value`` in another unit such that float(s) * factor == float(value) exactly
    (the loader multiplies by the factor), else None: a converted result then gives the canonical number."""
    try:
        v = float(value)
    except ValueError:
        return None
    for decimals in range(0, 18):
        s = f"{v / factor:.{decimals}f}"
        if float(s) * factor == v:
            return s
    return None


def long_labs(labs: pd.DataFrame, trial: Trial, spec: dict, unit_of, name_of) -> list[dict]:
    """The wide labs table as one row per result, in the canonical order (sample by sample, the panel's order).

    An empty cell gives no row (no result); a missing-value code or a result beyond a limit is the row's value as
    written. ``unit_of(test, sample, text)`` gives (unit, value text) as the site reports it; ``name_of(test,
    sample)`` the test's name. Row keys are the ``long`` mapping's contract parts."""
    rows = []
    for n, (_, sample) in enumerate(labs.iterrows()):
        for test in trial.lab_panel:
            text = sample[test.column]
            if text == "":
                continue
            unit, value = unit_of(test, n, text, sample.get(f"{test.column}_unit", ""))
            rows.append({"subject_id": sample["subject_id"], "visit": sample["visit"], "lab_date": sample["lab_date"],
                         "test": name_of(test, n), "value": value, "unit": unit, "sample": n})
    return rows


def chinese_export(canonical: Path, out: Path, trial: Trial | None = None) -> Path:
    """The canonical export as a Chinese hospital sends it (chinese.mapping.yaml): Chinese headers and codes, 是/否,
    DD/MM/YYYY dates (birth dates as Excel day numbers, infusion and sampling with a time of day), the screening log
    as a workbook whose first sheet holds notes, labs long with a unit per row (total bilirubin in mg/dL every third
    sample whose value converts back exactly) and a reference range. Returns the mapping's path."""
    trial = trial or load_trial(paths.DEFAULT_TRIAL)
    mapping, tables = load(CHINESE_MAPPING), canonical_tables(canonical)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        spec = mapping[name]
        if name == "labs":
            frame = _chinese_labs(table, trial, spec)
        else:
            frame = site_frame(table, spec)
        if spec["source"].endswith(".xlsx"):
            _chinese_workbook(frame, out / spec["source"], spec["sheet"], spec.get("dates") or {})
        else:
            _csv(frame, out / spec["source"])
    return CHINESE_MAPPING


def _chinese_labs(labs: pd.DataFrame, trial: Trial, spec: dict) -> pd.DataFrame:
    names: dict[str, list[str]] = {}
    for source, column in spec["tests"].items():
        names.setdefault(column, []).append(source)

    def unit_of(test, n, text, unit):
        unit = unit or test.unit
        if test.column == "tbil" and n % MG_DL_EVERY == 0 and unit == test.unit:
            converted = exact_text(text, test.factor("mg/dL"))
            if converted is not None:
                return "mg/dL", converted
        return CHINESE_UNITS.get(unit, unit), text

    def name_of(test, n):
        return names[test.column][(n // 2) % len(names[test.column])]  # the code instead of the name now and then

    rows = long_labs(labs, trial, spec, unit_of, name_of)
    visits = backwards(spec["recode"]["visit"])
    fmt = spec["dates"]["lab_date"]
    part = spec["long"]
    return pd.DataFrame({
        part["subject_id"]: [r["subject_id"] for r in rows],
        part["visit"]: [visits[r["visit"]] for r in rows],
        part["lab_date"]: [write_date(r["lab_date"], fmt, r["sample"]) for r in rows],
        part["test"]: [r["test"] for r in rows],
        part["value"]: [r["value"] for r in rows],
        part["unit"]: [r["unit"] for r in rows],
        "参考范围": [REFERENCE_RANGES.get((t, u), "") for t, u in
                 zip([spec["tests"][r["test"]] for r in rows], [r["unit"] for r in rows])],
    })


def _chinese_workbook(frame: pd.DataFrame, path: Path, sheet: str, dates: dict) -> None:
    """The data on sheet ``sheet`` after a notes sheet; Excel day numbers as numbers, every other cell as text."""
    from openpyxl import Workbook

    book = Workbook()
    notes = book.active
    notes.title = CHINESE_NOTES_SHEET
    for line in CHINESE_NOTES:
        notes.append([line])
    data = book.create_sheet(sheet)
    data.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        data.append([v if isinstance(v, int) or v != "" else None for v in row])
    book.save(path)


def sdtm_lb_export(canonical: Path, out: Path, trial: Trial | None = None) -> Path:
    """The canonical export with labs as an SDTM-like LB domain (sdtm_lb.mapping.yaml): lb.csv, one row per result
    (STUDYID, DOMAIN, USUBJID, LBSEQ, LBTESTCD, LBTEST, LBORRES, LBORRESU, VISIT, LBDTC with a time of day); the
    other files copied as they are. Returns the mapping's path."""
    trial = trial or load_trial(paths.DEFAULT_TRIAL)
    spec = load(SDTM_MAPPING)["labs"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(canonical).glob("*.csv")):
        if path.stem != "labs":
            shutil.copyfile(path, out / path.name)
    labs = canonical_tables(canonical)["labs"]
    codes = backwards(spec["tests"])

    def unit_of(test, n, text, unit):
        unit = unit or test.unit
        return ("" if unit == "1" else unit), text

    rows = long_labs(labs, trial, spec, unit_of, lambda test, n: codes[test.column])
    visits = backwards(spec["recode"]["visit"])
    part = spec["long"]
    frame = pd.DataFrame({
        "STUDYID": trial.id, "DOMAIN": "LB",
        part["subject_id"]: [r["subject_id"] for r in rows],
        "LBSEQ": range(1, len(rows) + 1),
        part["test"]: [r["test"] for r in rows],
        "LBTEST": [SDTM_TESTS_NAMES[spec["tests"][r["test"]]] for r in rows],
        part["value"]: [r["value"] for r in rows],
        part["unit"]: [r["unit"] for r in rows],
        part["visit"]: [visits.get(r["visit"], r["visit"]) for r in rows],
        part["lab_date"]: [write_date(r["lab_date"], spec["dates"]["lab_date"], r["sample"]) for r in rows],
    })
    frame["LBSEQ"] = frame.groupby(part["subject_id"]).cumcount() + 1
    _csv(frame, out / spec["source"])
    return SDTM_MAPPING


def xpt_export(canonical: Path, out: Path, trial: Trial | None = None) -> Path:
    """The canonical export as SAS transport files, version 5 (xpt.mapping.yaml): one .xpt per table, names of at
    most 8 characters, each variable labelled with the contract's meaning (at most 40 characters), dates as SAS
    dates, numbers as numbers (a column with a missing-value code or a limit such as "<5" stays text), empty cells
    as SAS missing values. A source name that is not a variable name (it has a space) is a label: the variable is
    then the contract name's first 8 letters in upper case. Returns the mapping's path."""
    import pyreadstat

    trial = trial or load_trial(paths.DEFAULT_TRIAL)
    mapping, tables, contract = load(XPT_MAPPING), canonical_tables(canonical), export_spec(trial)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        spec = mapping[name]
        columns = {c.name: c for c in contract[name].columns}
        names = backwards(spec["rename"])
        frame, labels = {}, []
        for column in table.columns:
            source, meaning = names[column], columns[column].meaning[:40]
            variable = source if " " not in source else column.upper()[:8]
            if variable != source and source != meaning:
                raise ValueError(f"{name}.{column}: renamed by the label {source!r}, but its label is {meaning!r}")
            frame[variable] = xpt_values(table[column], columns[column].type)
            labels.append(meaning)
        if any(len(v) > 8 for v in frame):
            raise ValueError(f"{name}: a variable name longer than 8 characters: {list(frame)}")
        pyreadstat.write_xport(pd.DataFrame(frame), str(out / spec["source"]), file_label=contract[name].meaning[:40],
                               column_labels=labels, table_name=Path(spec["source"]).stem.upper()[:8],
                               file_format_version=5)
    return XPT_MAPPING


def xpt_values(text: pd.Series, kind: str) -> pd.Series:
    """A column's text cells as SAS stores them: dates as dates, numbers as numbers where every cell is one."""
    if kind == "date":
        return pd.Series([dt.date.fromisoformat(v) if v else None for v in text], index=text.index, dtype=object)
    if kind in ("integer", "number"):
        numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
        if not (numbers.isna() & (text != "")).any():
            return numbers.astype(float)
    return text
