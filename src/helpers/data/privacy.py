"""Direct identifiers: never in analysis data, never in outputs.

Two checks, both with one matcher (``Identifiers.find``) on normalized text, so that letter case,
accents, spaces and separators cannot hide an identifier:

* free-text cells of the export (AE terms, causes of death, withdrawal reasons) are checked against
  every identifier value before they reach ADaM (``identifiers_in_text``);
* every built output is scanned before it is published (``find_identifiers``); embedded images are
  skipped.

Normalization (``name_key``, ``digit_key``): Unicode NFKD with accents removed, case folded; a name
is compared without spaces, hyphens, underscores, dots or middle dots (pinyin "Wang Wei", "wang-wei"
and "WANGWEI" are one name; so are 王伟, "王 伟", "王\u3000伟", "王·伟" and "王_伟"); a phone or ID number is
compared on its digits (and a final X) only, as a whole number or as its start or end (a country code
or extension around it). Letters are matched as whole words: a name is the join of 1 to 4 adjacent words.

A name in Chinese characters is also looked for in pinyin (``pinyin_keys``, by pypinyin): every
reading of each character (heteronyms, at most ``MAX_READINGS`` per name; ü as u, v or yu), surname
first or last, with or without tone marks or numbers ("Wu Jinfeng", "Wú Jīnfèng", "wu2 jin1feng4",
"JINFENG WU", "wu-jinfeng", "WuJinfeng"). Its words must break between syllables, and a name of 2
syllables in one word must be in CamelCase ("WangWei", not "wangwei"), so that English words
("change", "like", "get a") are not taken for names.

A value counts as an identifier only if it can identify someone: at least 2 CJK characters, 4 letters
or 7 digits, and not a placeholder ("-", "0", "NA", "unknown", ...). Shorter or common values are not
scanned (they would refuse valid books without protecting anyone).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import accumulate, product
from pathlib import Path

import pandas as pd

from helpers.data.schema import load_schema

SCANNED = {".csv", ".ipynb", ".md", ".html", ".txt", ".json", ".js", ".svg", ".yml"}
PLACEHOLDERS = {"", "-", "--", "0", "na", "n/a", "nil", "none", "null", "unknown", "unk", "nd", "x", "xx", "xxx"}
MIN_CJK, MIN_LETTERS, MIN_DIGITS = 2, 4, 7
MAX_READINGS, MAX_WORDS = 64, 4
_CJK_CHAR = r"[\u3400-\u9fff\uf900-\ufaff]"
_SEPARATORS = r"[\s\-_.'’·・‧\u2010-\u2015]"
_CJK = re.compile(f"{_CJK_CHAR}+")
_CJK_RUN = re.compile(rf"{_CJK_CHAR}+(?:{_SEPARATORS}{{1,3}}{_CJK_CHAR}+)*")
_NAME_SEPARATORS = re.compile(f"{_SEPARATORS}+")
_WORD = re.compile(r"[a-z]+")
_DIGITS = re.compile(r"\d(?:[\d\-./()]| (?=\d))*x?")
_EMBEDDED = re.compile(r'"image/(?:png|jpeg|gif)": "[^"]*"|data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+')
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_AT = re.compile(r"(?=(\d{4}-\d{2}-\d{2}))")  # every place a date starts, overlapping


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _unaccented(text: str) -> str:
    """Accents removed (NFKD, combining marks dropped; only runs of non-ASCII characters can hold one)."""
    text = unicodedata.normalize("NFKD", str(text))
    if text.isascii():
        return text
    return _NON_ASCII.sub(lambda m: "".join(c for c in m.group() if not unicodedata.combining(c)), text)


def _plain(text: str) -> str:
    """Accents removed and case folded."""
    return _unaccented(text).casefold()


def name_key(value: str) -> str:
    """A name as compared: accents, case, spaces, hyphens, underscores, dots, middle dots and apostrophes removed."""
    return _NAME_SEPARATORS.sub("", _plain(value))


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


@lru_cache(maxsize=None)
def _readings(char: str) -> tuple[str, ...]:
    """Every toneless pypinyin reading of one character, the commonest first, ü spelled u, v and yu."""
    from pypinyin import Style, pinyin

    out = []
    for syllables in pinyin(char, style=Style.NORMAL, heteronym=True, errors="ignore"):
        for s in syllables:
            out += [s] + ([s.replace("v", "u"), s.replace("v", "yu")] if "v" in s else [])
    return tuple(dict.fromkeys(s for s in out if s.isascii() and s.isalpha()))


def pinyin_keys(key: str) -> dict[str, set[tuple[int, ...]]]:
    """The pinyin spellings of a name in Chinese characters (a ``name_key``), as compared, each with its syllable
    boundaries: each character in every reading (at most ``MAX_READINGS`` combinations, the given name's rarer
    readings dropped first), surname (one or two characters) first or last."""
    return {p: set(cuts) for p, cuts in _pinyin_keys(key)}


@lru_cache(maxsize=100_000)
def _pinyin_keys(key: str) -> tuple[tuple[str, frozenset], ...]:
    """``pinyin_keys``, kept (names recur: within an export, and between its raw and typed tables)."""
    readings = [list(_readings(c)) for c in key]
    if len(key) < MIN_CJK or not all(readings):
        return ()
    for r in reversed(readings):
        while len(r) > 1 and math.prod(map(len, readings)) > MAX_READINGS:
            r.pop()
    keys: dict[str, set[tuple[int, ...]]] = {}
    for syllables in product(*readings):
        if identifies("".join(syllables)):
            for s in range(min(3, len(syllables))):
                order = syllables[s:] + syllables[:s]
                keys.setdefault("".join(order), set()).add(tuple(accumulate(map(len, order[:-1]))))
    return tuple((p, frozenset(cuts)) for p, cuts in keys.items())


@dataclass
class Identifiers:
    """Normalized identifier values of one export, with the raw column each came from; the syllable boundaries
    of the pinyin spellings of names held in Chinese characters."""
    names: dict[str, str]
    numbers: dict[str, str]
    dates: dict[str, str]
    syllables: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names) + len(self.numbers) + len(self.dates)

    def digest(self) -> str:
        """SHA-256 of the values and of the code that looks for them: what a scan's result depends on besides the
        text (it names no identifier)."""
        values = json.dumps([self.names, self.numbers, self.dates, self.syllables], sort_keys=True)
        return hashlib.sha256(values.encode() + Path(__file__).read_bytes()).hexdigest()

    @cached_property
    def _lengths(self) -> tuple[list[int], int, list[int]]:
        """Lengths of the CJK name keys, the longest other name key, lengths of the number keys."""
        cjk = {len(k) for k in self.names if _CJK.fullmatch(k)}
        return (sorted(cjk), max((len(k) for k in self.names if not _CJK.fullmatch(k)), default=0),
                sorted({len(k) for k in self.numbers}))

    @cached_property
    def _name_prefixes(self) -> frozenset[str]:
        """Every beginning of a (non-CJK) name key: words that join into none of them cannot start a name."""
        return frozenset(k[:n] for k in self.names if not _CJK.fullmatch(k) for n in range(1, len(k) + 1))

    def _spelled(self, words: list[str], unaccented: str, camel: dict[str, bool]) -> bool:
        """Whether words that join into a name are that name: a pinyin spelling must be split between
        syllables only, and be written in one word only if of 3 syllables or more or in CamelCase ("WangWei")."""
        key = "".join(words)
        if key not in self.syllables:
            return True
        cuts = set(accumulate(map(len, words[:-1])))
        if cuts:
            return any(cuts <= set(s) for s in self.syllables[key])
        if any(len(s) >= 2 for s in self.syllables[key]):
            return True
        if key not in camel:
            bounds = {b for s in self.syllables[key] for b in s}
            camel[key] = any(w[0].isupper() and not w.isupper() and any(w[b].isupper() for b in bounds)
                             for w in re.findall(rf"(?<![a-z]){key}(?![a-z])", unaccented, flags=re.IGNORECASE))
        return camel[key]

    def find(self, text: str) -> list[tuple[str, str]]:
        """(column, matched text) for every identifier in ``text``."""
        text = _EMBEDDED.sub("", text)
        unaccented = _unaccented(text)
        plain = unaccented.casefold()
        hits, camel = [], {}
        cjk_lengths, longest, number_lengths = self._lengths
        if cjk_lengths:
            for run in _CJK_RUN.findall(plain):
                run = _NAME_SEPARATORS.sub("", run)
                hits += [(self.names[run[i:i + n]], run[i:i + n]) for n in cjk_lengths
                         for i in range(len(run) - n + 1) if run[i:i + n] in self.names]
        if longest:
            words, prefixes = _WORD.findall(plain), self._name_prefixes
            for i in range(len(words)):
                joined = ""
                for j in range(i, min(i + MAX_WORDS, len(words))):
                    joined += words[j]
                    if len(joined) > longest or joined not in prefixes:
                        break
                    if joined in self.names and self._spelled(words[i:j + 1], unaccented, camel):
                        hits.append((self.names[joined], " ".join(words[i:j + 1])))
        if number_lengths:
            for run in _DIGITS.findall(plain):
                digits = digit_key(run)
                found = {digits} | {digits[-n:] for n in number_lengths} | {digits[:n] for n in number_lengths}
                hits += [(self.numbers[k], k) for k in sorted(found) if k in self.numbers]
        dated = {m for m in _DATE_AT.findall(text) if m in self.dates}
        hits += [(self.dates[d], d) for d in dated] + [(col, d) for d, col in self._odd_dates.items() if d in text]
        return sorted(set(hits))

    @cached_property
    def _odd_dates(self) -> dict[str, str]:
        """Date keys not written YYYY-MM-DD (found by a search of their own, not by ``_DATE_AT``)."""
        return {d: col for d, col in self.dates.items() if not _DATE.fullmatch(d)}


def _keys(values: pd.Series, numbers: bool) -> pd.Series:
    """``digit_key`` or ``name_key`` of every value, vectorized (the same rules)."""
    plain = values.str.normalize("NFKD").str.replace(r"[\u0300-\u036f]", "", regex=True).str.casefold()
    return plain.str.replace(r"[^0-9x]" if numbers else _NAME_SEPARATORS.pattern, "", regex=True)


def _first(found: dict[str, str], keys, where: str) -> None:
    """Record where each key was first seen (the screening log before the randomization log)."""
    for k in keys:
        found.setdefault(k, where)


def identifier_values(raw_tables: dict[str, pd.DataFrame]) -> Identifiers:
    """Every identifying value of a direct-identifier column (names, phones, ID numbers, birth dates), normalized;
    names in Chinese characters also in pinyin."""
    names, numbers, dates, spelled = {}, {}, {}, {}
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
            _first(numbers, (k for k in _keys(text[has_digit], True).unique() if identifies(k)), where)
            held = [k for k in _keys(text[~has_digit & ~is_date], False).unique() if identifies(k)]
            _first(names, held, where)
            for k in filter(_CJK.fullmatch, held):
                for p, cuts in pinyin_keys(k).items():
                    spelled.setdefault(p, (where, set()))[1].update(cuts)
    syllables = {p: tuple(sorted(cuts)) for p, (_, cuts) in spelled.items() if p not in names}
    names.update({p: spelled[p][0] for p in syllables})
    return Identifiers(names, numbers, dates, syllables)


def find_identifiers(folder: Path, values: Identifiers) -> list[tuple[Path, str, str]]:
    """(file, raw column, matched text) for every identifier found in a text file below ``folder``."""
    return scan_for_identifiers(folder, values)[0]


def scan_for_identifiers(folder: Path, values: Identifiers, known_clean: frozenset[str] | set[str] = frozenset()
                         ) -> tuple[list[tuple[Path, str, str]], set[str]]:
    """``find_identifiers``, not reading again a file whose content (SHA-256) is in ``known_clean``: found free of
    the same ``values`` before. Also returns the digests of the files below ``folder`` free of them now."""
    hits, clean = [], set()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix in SCANNED:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            found = [] if digest in known_clean else values.find(data.decode("utf-8", errors="ignore"))
            hits += [(path, column, text) for column, text in found]
            if not found:
                clean.add(digest)
    return hits, clean


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
            found = {}
            for i, text in table[col].dropna().items():
                text = str(text)
                if text not in found:
                    found[text] = values.find(text)
                out += [(file, i, col, where) for where, _ in found[text]]
    return out
