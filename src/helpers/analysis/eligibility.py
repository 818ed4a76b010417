"""The trial's eligibility criteria as code: one named rule per criterion, evaluated over the screening log.

The criteria come from the trial file (``eligibility``): the age range, when given, is inclusion 1;
then each Y/N column of the screening log, an inclusion failing when not "Y" and an exclusion
failing when "Y". The rule list, the data dictionary and the export contract read the same file,
so they cannot drift apart.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from helpers.trial import Trial

AGE = "age"


CONSENT_NOT_RECORDED = "consent not recorded"


@dataclass(frozen=True)
class Rule:
    """One criterion: ``fails(screening)`` is True for each person it makes ineligible."""
    name: str
    kind: str  # "inclusion" or "exclusion"
    number: int
    label: str
    fails: Callable[[pd.DataFrame], pd.Series]
    consent: bool = False

    @property
    def title(self) -> str:
        return f"{self.kind.capitalize()} {self.number}: {self.label}"

    @property
    def short_title(self) -> str:
        """The title cut at a word boundary near 56 characters, for diagram boxes."""
        if len(self.title) <= 56:
            return self.title
        return self.title[:55].rsplit(" ", 1)[0].rstrip(",;") + "\u2026"


def _yes(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    """True where the flag is "Y"; a missing flag is not "Y"."""
    return lambda s: s[column].astype("string").eq("Y").fillna(False).astype(bool)


def _not_yes(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda s: ~_yes(column)(s)


def _age_outside(lo: int, hi: int) -> Callable[[pd.DataFrame], pd.Series]:
    """True outside [lo, hi] years (inclusive); an unknown age cannot show eligibility, so it fails."""
    return lambda s: (~s[AGE].astype("Float64").between(lo, hi)).fillna(True).astype(bool)


def criteria(trial: Trial) -> list[Rule]:
    """Every criterion in the trial file's order: the age range (inclusion 1, if any), inclusions, exclusions."""
    rules = []
    if trial.age_range:
        lo, hi = trial.age_range
        rules.append(Rule(AGE, "inclusion", 1, f"Age {lo} to {hi} years", _age_outside(lo, hi)))
    for c in trial.eligibility:
        test = _not_yes(c.column) if c.kind == "inclusion" else _yes(c.column)
        rules.append(Rule(c.column, c.kind, c.number, c.label, test, c.consent))
    return rules


def evaluate(screening: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Per screened person: one True/False column per criterion (True = fails it), eligible, reasons, status.

    ``status`` is CONSORT's: "eligible", "declined to participate" (fails only the consent
    criterion), "consent not recorded" (fails only the consent criterion, whose cell is blank: not a
    refusal) or "not meeting criteria" (fails any other criterion, with or without consent).
    ``reasons`` lists every failed criterion; ``primary_reason`` is the first in the trial file's
    order among those other than consent, so that reason counts add up to the persons excluded.
    """
    rules = criteria(trial)
    fails = pd.DataFrame({c.name: c.fails(screening).to_numpy(dtype=bool) for c in rules}, index=screening.index)
    titles = {c.name: c.title for c in rules}
    consent = [c.name for c in rules if c.consent]
    other = [c.name for c in rules if not c.consent]
    out = pd.concat([screening[["screening_id"]], fails], axis=1)
    out["eligible"] = ~fails.any(axis=1)
    out["reasons"] = ["; ".join(titles[k] for k in row.index[row]) for _, row in fails.iterrows()]
    out["primary_reason"] = [next((titles[k] for k in other if row[k]), "") for _, row in fails.iterrows()]
    failed_other = fails[other].any(axis=1)
    out["status"] = "eligible"
    out.loc[fails[consent].any(axis=1) & ~failed_other, "status"] = "declined to participate"
    refused = fails[consent] & ~screening[consent].isna()
    out.loc[fails[consent].any(axis=1) & ~refused.any(axis=1) & ~failed_other, "status"] = CONSENT_NOT_RECORDED
    out.loc[failed_other, "status"] = "not meeting criteria"
    return out


def criteria_counts(result: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Per criterion, in the trial file's order: persons failing it, and persons for whom it is the only failure."""
    rules = criteria(trial)
    n_failed = result[[c.name for c in rules]].sum(axis=1)
    return pd.DataFrame({
        "Criterion": [c.title for c in rules],
        "Failed": [int(result[c.name].sum()) for c in rules],
        "Only reason": [int((result[c.name] & (n_failed == 1)).sum()) for c in rules],
    })
