"""The ADaM datasets as SAS transport (XPT version 5) files, the format regulators and SAS users take.

Every variable needs a label and a type here (``VARIABLES``: CDISC ADaM standard labels where they exist,
study-specific ones otherwise; the baseline covariates take their labels from the trial file), so a new column cannot reach a submission file unlabelled. XPT v5 limits
names to 8 characters, labels to 40 and character values to 200 bytes of ASCII; a breach is an error, not
a silent truncation. Dates are SAS dates (days since 1960-01-01) with the DATE9. format.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from pathlib import Path

import pandas as pd
import pyreadstat

from helpers.trial import Trial

NAME_MAX, LABEL_MAX, CHAR_MAX = 8, 40, 200
SAS_EPOCH = pd.Timestamp("1960-01-01")
FIXED_TIME = dt.datetime(1980, 1, 1)
DATE_FORMAT = "DATE9."
_V5_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")

DATASETS = {
    "adsl": "Subject-Level Analysis Dataset",
    "adlb": "Laboratory Analysis Dataset",
    "adtte": "Time-to-Event Analysis Dataset",
}

# name -> (label, type): C character, N numeric, D date (from CDISC ADaM IG / SDTM unless study-specific).
VARIABLES = {
    "STUDYID": ("Study Identifier", "C"),
    "USUBJID": ("Unique Subject Identifier", "C"),
    "SUBJID": ("Subject Identifier for the Study", "C"),
    "SITEID": ("Study Site Identifier", "C"),
    "AGE": ("Age", "N"),
    "AGEU": ("Age Units", "C"),
    "SEX": ("Sex", "C"),
    "ARMCD": ("Planned Arm Code", "C"),
    "TRT01P": ("Planned Treatment for Period 01", "C"),
    "TRT01PN": ("Planned Treatment for Period 01 (N)", "N"),
    "TRT01A": ("Actual Treatment for Period 01", "C"),
    "TRT01AN": ("Actual Treatment for Period 01 (N)", "N"),
    "RANDDT": ("Date of Randomization", "D"),
    "RANDBLK": ("Randomization Block Number", "N"),
    "TRTSDT": ("Date of First Exposure to Treatment", "D"),
    "ITTFL": ("Intent-To-Treat Population Flag", "C"),
    "SAFFL": ("Safety Population Flag", "C"),
    "DCUTDT": ("Date of Data Cut", "D"),
    "DTHDT": ("Date of Death", "D"),
    "DTHFL": ("Subject Death Flag", "C"),
    "DTHCAUS": ("Cause of Death", "C"),
    "EOSSTT": ("End of Study Status", "C"),
    "DCSREAS": ("Reason for Discontinuation from Study", "C"),
    "EOSDT": ("End of Study Date", "D"),
    "LSTALVDT": ("Date Last Known Alive", "D"),
    "PARAMCD": ("Parameter Code", "C"),
    "PARAM": ("Parameter", "C"),
    "VISIT": ("Visit Name", "C"),
    "AVISIT": ("Analysis Visit", "C"),
    "AVISITN": ("Analysis Visit (N)", "N"),
    "ADT": ("Analysis Date", "D"),
    "ADY": ("Analysis Relative Day", "N"),
    "AVAL": ("Analysis Value", "N"),
    "AVALC": ("Analysis Value (C)", "C"),
    "ACENSFL": ("Result Beyond Reporting Limit (<, >)", "C"),
    "AVALU": ("Analysis Value Unit", "C"),
    "LBSTAT": ("Completion Status", "C"),
    "LBREASND": ("Reason Test Not Done", "C"),
    "ANL01FL": ("Analysis Flag 01", "C"),
    "ABLFL": ("Baseline Record Flag", "C"),
    "BASE": ("Baseline Value", "N"),
    "CHG": ("Change from Baseline", "N"),
    "PCHG": ("Percent Change from Baseline", "N"),
    "STARTDT": ("Time-to-Event Origin Date for Subject", "D"),
    "CNSR": ("Censor", "N"),
    "EVNTDESC": ("Event or Censoring Description", "C"),
}

_TRANSLITERATE = str.maketrans({"µ": "u", "μ": "u", "≤": "<=", "≥": ">=", "±": "+/-", "×": "x", "°": " deg",
                                "–": "-", "—": "-", "−": "-", "‘": "'", "’": "'", "“": '"', "”": '"',
                                "…": "...", "\u00a0": " "})


def baseline_variables(adlb: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Labels of ADSL's ``<PARAMCD>BL`` columns (the baseline value of each ADLB parameter, a numeric), and of
    ``<PARAMCD>`` (a derived parameter's baseline keeps its own name).

    Rule: "Baseline " and the parameter with its unit; when that passes 40 characters, the code and unit.
    """
    params = adlb.drop_duplicates("PARAMCD").set_index("PARAMCD")
    out = {}
    for code, row in params.iterrows():
        label = f"Baseline {row['PARAM']}"
        spec = (label if len(label) <= LABEL_MAX else f"Baseline {code} ({row['AVALU']})", "N")
        out[f"{code}BL"] = out[code] = spec
    return out


def covariate_variables(trial: Trial) -> dict[str, tuple[str, str]]:
    """Labels of ADSL's baseline covariates from the trial file (``baseline_covariates``).

    Rule: the covariate's label, after "Baseline " when it is a value at the baseline visit (derived, a class,
    a clinical grade); its code when that passes 40 characters; numeric when continuous."""
    out = {}
    for c in trial.baseline_covariates:
        label = ascii_safe(f"Baseline {c.label}" if c.origin[0] in ("derived", "class", "clinical") else c.label)
        out[c.code] = (label if len(label) <= LABEL_MAX else c.code, "N" if c.type == "continuous" else "C")
    return out


_INTERCURRENT = re.compile(r"^ICE(\d+)(DT|FL)$")


def intercurrent_variables(adsl: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Labels of ADSL's ``ICEnDT`` / ``ICEnFL`` columns: date and flag of the trial file's n-th intercurrent event
    (``helpers.data.adam.intercurrent_columns``)."""
    out = {}
    for column in adsl.columns:
        m = _INTERCURRENT.match(column)
        if m:
            n, kind = m.groups()
            out[column] = (f"Date of Intercurrent Event {n}", "D") if kind == "DT" else \
                (f"Intercurrent Event {n} Flag", "C")
    return out


def variable_specs(adam: dict[str, pd.DataFrame], trial: Trial | None = None) -> dict[str, tuple[str, str]]:
    """Label and type of every variable the datasets may hold: ``VARIABLES``, the baseline-value rule, the
    intercurrent-event columns and the trial file's baseline covariates."""
    extra = baseline_variables(adam["adlb"]) if "adlb" in adam else {}
    extra |= intercurrent_variables(adam["adsl"]) if "adsl" in adam else {}
    covariates = covariate_variables(trial) if trial is not None else {}
    return extra | covariates | VARIABLES


def ascii_safe(text: str) -> str:
    """``text`` in ASCII: common symbols spelled out, accents dropped; anything else is an error (XPT is ASCII)."""
    out = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    out = "".join(ch for ch in out if not unicodedata.combining(ch))
    if not out.isascii():
        raise ValueError(f"no ASCII spelling for {sorted({ch for ch in out if not ch.isascii()})} in {text!r}")
    return out


def sas_date(values: pd.Series) -> pd.Series:
    """Days since 1960-01-01 (SAS dates) of dates or ISO date strings, missing stays missing."""
    days = (pd.to_datetime(values, format="ISO8601").dt.floor("D") - SAS_EPOCH).dt.days
    return days.astype("Float64").astype(float)


def _character(dataset: str, column: str, values: pd.Series) -> pd.Series:
    try:
        text = values.astype("object").where(values.notna(), "").map(lambda v: ascii_safe(str(v)))
    except ValueError as err:
        raise ValueError(f"{dataset}.{column}: {err}") from None
    if len(text) and text.str.len().max() > CHAR_MAX:
        raise ValueError(f"{dataset}.{column}: a value is longer than {CHAR_MAX} characters (XPT v5 limit)")
    return text.astype("object")


def _date(dataset: str, column: str, values: pd.Series) -> pd.Series:
    try:
        return sas_date(values)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{dataset}.{column}: declared a date in helpers.data.transport.VARIABLES: {err}") from None


def _numeric(dataset: str, column: str, values: pd.Series) -> pd.Series:
    if not (pd.api.types.is_numeric_dtype(values) or values.isna().all()):
        raise ValueError(f"{dataset}.{column}: declared numeric in helpers.data.transport.VARIABLES, "
                         f"holds {values.dtype}")
    return pd.to_numeric(values.astype("object").where(values.notna(), None)).astype(float)


def check_variable(dataset: str, column: str, specs: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """The (label, type) of ``column``, or a ValueError naming the dataset and column that breaks an XPT v5 rule."""
    if len(column) > NAME_MAX or not _V5_NAME.match(column):
        raise ValueError(f"{dataset}.{column}: XPT v5 names are at most {NAME_MAX} upper-case letters, digits or _")
    if column not in specs:
        raise ValueError(f"{dataset}.{column}: no label; add the column to helpers.data.transport.VARIABLES")
    label, kind = specs[column]
    if len(label) > LABEL_MAX or not label.isascii():
        raise ValueError(f"{dataset}.{column}: label {label!r} is not ASCII of at most {LABEL_MAX} characters")
    return label, kind


def transport_frame(dataset: str, df: pd.DataFrame, specs: dict[str, tuple[str, str]]
                    ) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """One dataset as XPT v5 holds it: character columns ASCII text, numbers floats, dates SAS dates;
    with its variable labels and formats."""
    if dataset not in DATASETS or len(dataset) > NAME_MAX:
        raise ValueError(f"{dataset}: no dataset label; add it to helpers.data.transport.DATASETS")
    out, labels, formats = {}, {}, {}
    for column in df.columns:
        labels[column], kind = check_variable(dataset, column, specs)
        if kind == "C":
            out[column] = _character(dataset, column, df[column])
        elif kind == "D":
            out[column], formats[column] = _date(dataset, column, df[column]), DATE_FORMAT
        else:
            out[column] = _numeric(dataset, column, df[column])
    return pd.DataFrame(out, index=df.index), labels, formats


def sas_datetime(when: dt.datetime) -> bytes:
    """``when`` as an XPT header datetime, ddMMMyy:hh:mm:ss (independent of the locale)."""
    month = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")[when.month - 1]
    return f"{when:%d}{month}{when:%y:%H:%M:%S}".encode("ascii")


_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
_STAMP_OFFSETS = (144, 160, 464, 480)


def set_created(path: Path, when: dt.datetime) -> None:
    """Overwrite the created and modified datetimes of the library and member headers with ``when``.

    Why: pyreadstat writes the wall-clock time and has no argument for it, so two writes of the same data
    would differ. The four 16-byte fields sit at fixed offsets of the v5 header records; they are checked
    before they are replaced, so a change in pyreadstat's layout is an error, not a corrupt file.
    """
    data = bytearray(path.read_bytes())
    stamp = sas_datetime(when)
    for at in _STAMP_OFFSETS:
        if not _STAMP.fullmatch(bytes(data[at:at + 16])):
            raise RuntimeError(f"{path.name}: no XPT header datetime at byte {at}; pyreadstat's layout changed")
        data[at:at + 16] = stamp
    path.write_bytes(bytes(data))


def write_xpt(adam: dict[str, pd.DataFrame], folder: str | Path, created: dt.datetime = FIXED_TIME,
              trial: Trial | None = None) -> list[Path]:
    """Write each ADaM dataset as ``<folder>/<name>.xpt`` (SAS transport v5, member name the upper-case
    dataset name), byte-identical for the same data.

    ``created`` is the datetime the headers record (fixed by default, so that equal data give equal files).
    Every dataset is checked before any file is written; ``trial`` labels ADSL's baseline covariates.
    """
    specs = variable_specs(adam, trial)
    frames = {dataset: transport_frame(dataset, df, specs) for dataset, df in adam.items()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for dataset, (frame, labels, formats) in frames.items():
        path = folder / f"{dataset}.xpt"
        pyreadstat.write_xport(frame, str(path), file_label=DATASETS[dataset], column_labels=labels,
                               table_name=dataset.upper(), file_format_version=5, variable_format=formats)
        set_created(path, created)
        written.append(path)
    return written
