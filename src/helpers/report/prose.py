"""The book's one way of putting a result into words: estimates with their interval and p-value."""
from __future__ import annotations

import math

import pandas as pd

from helpers.trial import Trial

NOT_ESTIMABLE = "not estimable"


def format_p(p: float | None) -> str:
    """P-value as journals print it: three decimals, '<0.001' below that, empty when not computed."""
    if p is None or pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_text(p: float) -> str:
    """'P = 0.035' or 'P < 0.001', as the prose reads a p-value."""
    text = format_p(p)
    return f"P < {text[1:]}" if text.startswith("<") else f"P = {text}"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x)


def estimate_text(estimate: float, lower: float = math.nan, upper: float = math.nan, *, kind: str = "",
                  unit: str = "", p: float | None = None, digits: int = 2, scale: float = 1.0,
                  ci_label: str = "") -> str:
    """One estimate in words, the same way everywhere in the book.

    'ratio of geometric means 0.79 (95% CI 0.64 to 0.98; P = 0.035)' with ``kind``, ``ci_label="95% CI"``
    and ``p``; '68.8% (44.4 to 84.8)' with ``scale=100``, ``unit="%"``, ``digits=1``. ``unit`` is written
    right after the number (give it a leading space for ' points'). A missing estimate is 'not estimable';
    a missing interval is left out.
    """
    if _missing(estimate):
        return NOT_ESTIMABLE
    text = f"{kind} " if kind else ""
    text += f"{scale * estimate:.{digits}f}{unit}"
    inner = []
    if not _missing(lower):
        inner.append(f"{ci_label + ' ' if ci_label else ''}{scale * lower:.{digits}f} to {scale * upper:.{digits}f}")
    if p is not None and not _missing(p):
        inner.append(p_text(p))
    return text + (f" ({'; '.join(inner)})" if inner else "")


def whole_weeks(days: int) -> str:
    """A duration in days as whole weeks for the text ("24"; 1461 days: "209"), never a fraction of a week."""
    return str(round(days / 7))


def population_text(trial: Trial) -> str:
    """Who the trial enrolls, from the trial file's ``population`` ("participants" when it states none)."""
    return trial.population.strip() or "participants"


def change_text(code: str, visit: str, trial: Trial) -> str:
    """'change in eGFR from baseline to Week 24': what a continuous endpoint's MMRM contrast compares."""
    return f"change in {trial.endpoint(code).label} from baseline to {visit}"


def primary_what(trial: Trial) -> str:
    """The primary endpoint as prose names it: its label (time to event) or the change it tests (continuous)."""
    pe = trial.primary_endpoint
    return pe.label.lower() if pe.is_time_to_event else change_text(pe.code, trial.primary_visit.label, trial)


def word_list(words: list[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def early_ends_text(trial: Trial, conjunction: str = "or") -> str:
    """The ends of follow-up before its planned end, in prose: 'death, kidney failure or withdrawal' (the trial
    file's intercurrent events by their labels; just 'death or withdrawal' when it declares none)."""
    return word_list(["death"] + [e.label.lower() for e in trial.intercurrent_events] + ["withdrawal"], conjunction)


def death_role_text(trial: Trial) -> str:
    """Where deaths are analysed, for the estimand: as (part of) the lead time-to-event endpoint, primary or
    secondary."""
    lead = trial.lead_tte
    role = "the primary endpoint" if trial.primary_endpoint.is_time_to_event else "a secondary endpoint"
    if lead.events == ("DEATH",):
        return f"death is {role} ({lead.label.lower()}), analysed as time to event"
    if "DEATH" in lead.events:
        return f"death is one of the events of {role} ({lead.label.lower()}), analysed as time to event"
    return "deaths are analysed with the time-to-event endpoints"


def km_name(trial: Trial, code: str) -> str:
    """What a time-to-event endpoint's Kaplan-Meier estimate is called: 'survival' when death is its only event, else
    'event-free probability' (a composite endpoint is not survival)."""
    return "survival" if trial.tte(code).events == ("DEATH",) else "event-free probability"


def fisher_name(trial: Trial, code: str) -> str:
    """Fisher's exact test of a time-to-event endpoint as the text names it: on survivors, or on participants
    event-free, at the horizon."""
    who = "survivors" if km_name(trial, code) == "survival" else "participants event-free"
    return f"Fisher's exact test on {who} at the horizon"
