"""Direct identifiers: never in analysis data, never in outputs.

Two checks, both on normalized text, so that letter case, accents, spaces and separators cannot hide
an identifier:

* free-text cells of the export (AE terms, causes of death, withdrawal reasons) are checked against
  every identifier value before they reach ADaM (``identifiers_in_text``);
* every built output is scanned before it is published (``find_identifiers``); embedded images are
  skipped.

Normalization (``name_key``, ``digit_key``): Unicode NFKD with accents removed, case folded; a name
is compared without spaces or hyphens (pinyin "Wang Wei", "wang-wei" and "WANGWEI" are one name); a
phone or ID number is compared on its digits (and a final X) only, as a whole number or as its start
or end (a country code or extension around it). A value counts as an identifier
only if it can identify someone: at least 2 CJK characters, 4 letters or 7 digits, and not a
placeholder ("-", "0", "NA", "unknown", ...). Shorter or common values are not scanned (they would
refuse valid books without protecting anyone).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from helpers.data.schema import load_schema

SCANNED = {".csv", ".ipynb", ".md", ".html", ".txt", ".json", ".js", ".svg", ".yml"}
PLACEHOLDERS = {"", "-", "--", "0", "na", "n/a", "nil", "none", "null", "unknown", "unk", "nd", "x", "xx", "xxx"}
MIN_CJK, MIN_LETTERS, MIN_DIGITS = 2, 4, 7
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z]+")
_DIGITS = re.compile(r"\d(?:[\d\-./()]| (?=\d))*x?")
_EMBEDDED = re.compile(r'"image/(?:png|jpeg|gif)": "[^"]*"|data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+')


def _plain(text: str) -> str:
    """Accents removed and case folded (NFKD, combining marks dropped)."""
    text = unicodedata.normalize("NFKD", str(text))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def name_key(value: str) -> str:
    """A name as compared: accents, case, spaces, hyphens, dots and apostrophes removed."""
    return re.sub(r"[\s\-_.'’·]+", "", _plain(value))


def digit_key(value: str) -> str:
    """A phone or ID number as compared: its digits (and a final X check character), separators removed."""
    return re.sub(r"[^0-9x]", "", _plain(value))


def identifies(key: str) -> bool:
    """Whether a normalized value is specific enough to identify someone (the rule in the module docstring)."""
    if key in PLACEHOLDERS:
        return False
    if _CJK.fullmatch(key):
        return len(key) >= MIN_CJK
    if key.isdigit() or re.fullmatch(r"\d+x", key):
        return len(key) >= MIN_DIGITS
    return sum(c.isalpha() for c in key) >= MIN_LETTERS


@dataclass
class Identifiers:
    """Normalized identifier values of one export, with the raw column each came from."""
    names: dict[str, str]
    numbers: dict[str, str]
    dates: dict[str, str]

    def __len__(self) -> int:
        return len(self.names) + len(self.numbers) + len(self.dates)

    def find(self, text: str) -> list[tuple[str, str]]:
        """(column, matched text) for every identifier in ``text``."""
        text = _EMBEDDED.sub("", text)
        plain = _plain(text)
        hits = []
        if self.names:
            lengths = sorted({len(k) for k in self.names})
            for run in _CJK.findall(plain):
                hits += [(self.names[run[i:i + n]], run[i:i + n]) for n in lengths
                         for i in range(len(run) - n + 1) if run[i:i + n] in self.names]
            words = _WORD.findall(plain)
            for i in range(len(words)):
                joined = ""
                for j in range(i, min(i + 4, len(words))):
                    joined += words[j]
                    if joined in self.names:
                        hits.append((self.names[joined], " ".join(words[i:j + 1])))
        if self.numbers:
            lengths = sorted({len(k) for k in self.numbers})
            for run in _DIGITS.findall(plain):
                digits = digit_key(run)
                found = {digits} | {digits[-n:] for n in lengths} | {digits[:n] for n in lengths}
                hits += [(self.numbers[k], k) for k in sorted(found) if k in self.numbers]
        hits += [(col, d) for d, col in self.dates.items() if d in text]
        return sorted(set(hits))


def _keys(values: pd.Series, numbers: bool) -> pd.Series:
    """``digit_key`` or ``name_key`` of every value, vectorized (the same rules)."""
    plain = values.str.normalize("NFKD").str.replace(r"[\u0300-\u036f]", "", regex=True).str.casefold()
    return plain.str.replace(r"[^0-9x]" if numbers else r"[\s\-_.'’·]+", "", regex=True)


def _first(found: dict[str, str], keys, where: str) -> None:
    """Record where each key was first seen (the screening log before the randomization log)."""
    for k in keys:
        found.setdefault(k, where)


def identifier_values(raw_tables: dict[str, pd.DataFrame]) -> Identifiers:
    """Every identifying value of a direct-identifier column (names, phones, ID numbers, birth dates), normalized."""
    names, numbers, dates = {}, {}, {}
    for file, spec in load_schema().items():
        table = raw_tables.get(file)
        if table is None:
            continue
        for column in spec.identifiers:
            if column not in table:
                continue
            col = table[column].dropna()
            where = f"{file}.{column}"
            if pd.api.types.is_datetime64_any_dtype(col):
                _first(dates, col.dt.strftime("%Y-%m-%d"), where)
                continue
            text = col.astype(str).str.strip()
            is_date = text.str.match(r"^\d{4}-\d{2}-\d{2}$")
            _first(dates, text[is_date], where)
            has_digit = text.str.contains(r"\d") & ~is_date
            for keys, target in ((_keys(text[has_digit], True), numbers), (_keys(text[~has_digit & ~is_date], False), names)):
                _first(target, (k for k in keys.unique() if identifies(k)), where)
    return Identifiers(names, numbers, dates)


def find_identifiers(folder: Path, values: Identifiers) -> list[tuple[Path, str, str]]:
    """(file, raw column, matched text) for every identifier found in a text file below ``folder``."""
    hits = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix in SCANNED:
            text = path.read_text(encoding="utf-8", errors="ignore")
            hits += [(path, column, found) for column, found in values.find(text)]
    return hits


def identifiers_in_text(tables: dict[str, pd.DataFrame], values: Identifiers,
                        columns: dict[str, list[str]]) -> list[tuple[str, int, str, str]]:
    """(file, row index, column, raw column of the identifier) for free-text cells holding an identifier."""
    out = []
    for file, cols in columns.items():
        table = tables.get(file)
        if table is None:
            continue
        for col in cols:
            if col not in table:
                continue
            for i, text in table[col].dropna().items():
                out += [(file, i, col, where) for where, _ in values.find(str(text))]
    return out
