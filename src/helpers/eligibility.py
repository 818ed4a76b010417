"""The protocol's eligibility criteria as code: one named rule per criterion, evaluated over the screening log.

Inclusion (protocol NCT06984497): 1. age 18 to 80 years (inclusive, completed years at screening),
2. end-stage liver disease, 3. signed informed consent. Exclusions 1-11 are the screening log's
Y/N flags; their labels and numbers come from the export schema, so the rule list and the data
dictionary cannot drift apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from .schema import load_schema

AGE_MIN, AGE_MAX = 18, 80
CONSENT = "consent"


@dataclass(frozen=True)
class Criterion:
    """One criterion: ``fails(screening)`` is True for each person it makes ineligible."""
    name: str
    kind: str  # "inclusion" or "exclusion"
    number: int
    label: str
    fails: Callable[[pd.DataFrame], pd.Series]

    @property
    def title(self) -> str:
        return f"{self.kind.capitalize()} {self.number}: {self.label}"

    @property
    def short_title(self) -> str:
        """The title cut at a word boundary near 56 characters, for diagram boxes."""
        if len(self.title) <= 56:
            return self.title
        return self.title[:55].rsplit(" ", 1)[0].rstrip(",;") + "\u2026"


def _age_outside(screening: pd.DataFrame) -> pd.Series:
    age = screening["age"].astype("Float64")
    return (~age.between(AGE_MIN, AGE_MAX)).fillna(True).astype(bool)


def _not_yes(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda s: s[column].astype(str).ne("Y")


def _yes(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda s: s[column].astype(str).eq("Y")


def _exclusions() -> list[Criterion]:
    """Exclusion rules from the screening columns whose schema meaning ends in '(exclusion N)'."""
    out = []
    for col in load_schema()["screening"].columns:
        m = re.fullmatch(r"(.*?)\s*\(exclusion (\d+)\)", col.meaning)
        if m:
            out.append(Criterion(col.name, "exclusion", int(m.group(2)), m.group(1), _yes(col.name)))
    return sorted(out, key=lambda c: c.number)


def criteria() -> list[Criterion]:
    """Every criterion in protocol order: inclusions 1-3, then exclusions 1-11."""
    return [
        Criterion("age_18_80", "inclusion", 1, f"Age {AGE_MIN} to {AGE_MAX} years", _age_outside),
        Criterion("esld", "inclusion", 2, "End-stage liver disease", _not_yes("esld")),
        Criterion(CONSENT, "inclusion", 3, "Signed informed consent", _not_yes(CONSENT)),
        *_exclusions(),
    ]


def evaluate(screening: pd.DataFrame) -> pd.DataFrame:
    """Per screened person: one True/False column per criterion (True = fails it), eligible, reasons, status.

    ``status`` is CONSORT's: "eligible", "declined to participate" (fails only the consent
    criterion) or "not meeting criteria" (fails any other criterion, with or without consent).
    ``reasons`` lists every failed criterion; ``primary_reason`` is the first in protocol order
    among those other than consent, so that reason counts add up to the persons excluded.
    """
    rules = criteria()
    fails = pd.DataFrame({c.name: c.fails(screening).to_numpy(dtype=bool) for c in rules},
                         index=screening.index)
    titles = {c.name: c.title for c in rules}
    other = [c.name for c in rules if c.name != CONSENT]
    out = pd.concat([screening[["screening_id"]], fails], axis=1)
    out["eligible"] = ~fails.any(axis=1)
    out["reasons"] = ["; ".join(titles[k] for k in row.index[row]) for _, row in fails.iterrows()]
    out["primary_reason"] = [next((titles[k] for k in other if row[k]), "") for _, row in fails.iterrows()]
    out["status"] = "eligible"
    out.loc[fails[CONSENT] & ~fails[other].any(axis=1), "status"] = "declined to participate"
    out.loc[fails[other].any(axis=1), "status"] = "not meeting criteria"
    return out


def criteria_counts(result: pd.DataFrame) -> pd.DataFrame:
    """Per criterion, in protocol order: persons failing it, and persons for whom it is the only failure."""
    rules = criteria()
    names = [c.name for c in rules]
    n_failed = result[names].sum(axis=1)
    return pd.DataFrame({
        "Criterion": [c.title for c in rules],
        "Failed": [int(result[c.name].sum()) for c in rules],
        "Only reason": [int((result[c.name] & (n_failed == 1)).sum()) for c in rules],
    })
