"""The trial described as data: read a YAML trial file into a small, typed object."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from helpers import paths


@dataclass(frozen=True)
class Arm:
    code: str
    label: str
    description: str
    ratio: int


@dataclass(frozen=True)
class Visit:
    code: str
    label: str
    week: int
    day: int
    window: tuple[int, int]

    @property
    def is_baseline(self) -> bool:
        return self.week == 0


def shown_unit(unit: str | None) -> str:
    """The unit as a reader sees it: empty for unitless quantities ("1" or none)."""
    return "" if unit in (None, "", "1") else unit


def unit_key(unit: str) -> str:
    """A unit as units are compared: NFKC (the micro sign is the Greek mu), mu written u, spaces trimmed."""
    return unicodedata.normalize("NFKC", str(unit)).strip().replace("\u03bc", "u")


def label_with_unit(label: str, unit: str | None, sep: str = " ") -> str:
    """'Albumin (g/L)' (``sep`` between label and unit: a newline for axis titles); no unit when unitless."""
    return f"{label}{sep}({shown_unit(unit)})" if shown_unit(unit) else label


@dataclass(frozen=True)
class LabTest:
    """One test of the trial's laboratory panel, as the export carries it (column = code in lower case).

    ``units`` maps each accepted input unit other than ``unit`` to the factor that converts it to
    ``unit`` (bilirubin mg/dL x 17.1 = umol/L). Outside ``impossible`` a value is an error; outside
    ``expected`` it is listed for review (a warning).
    """
    code: str
    label: str
    unit: str
    units: tuple[tuple[str, float], ...] = ()
    impossible: tuple[float, float] = (0.0, float("inf"))
    expected: tuple[float, float] | None = None
    decimals: int = 1

    @property
    def column(self) -> str:
        return self.code.lower()

    @property
    def factors(self) -> dict[str, float]:
        """Accepted unit -> factor to the panel unit (the panel unit itself included, factor 1)."""
        return {self.unit: 1.0, **dict(self.units)}

    def factor(self, unit: str) -> float | None:
        """The factor from a unit as written (empty: the panel unit) to the panel unit, None if not accepted."""
        if unit_key(unit) == "":
            return 1.0
        return {unit_key(u): f for u, f in self.factors.items()}.get(unit_key(unit))


@dataclass(frozen=True)
class Criterion:
    """One eligibility criterion recorded as a Y/N column of the screening log."""
    column: str
    kind: str  # "inclusion" (Y = met) or "exclusion" (Y = excluded)
    number: int
    label: str
    consent: bool = False


@dataclass(frozen=True)
class Treatment:
    """How study treatment is given and when study day 1 is.

    ``start``: "first_dose" (day 1 = the first record of the dosing file, ``infusion.csv``) or
    "randomization" (day 1 = the randomization date; the dosing file is then optional).
    """
    start: str = "first_dose"
    noun: str = "infusion"
    route: str = ""
    dose_unit: str = ""
    dose_range: tuple[float, float] = (0.0, float("inf"))


@dataclass(frozen=True)
class Stratum:
    """A stratification factor: an ADSL column, with its levels when the allocation list crosses them."""
    code: str
    levels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Randomization:
    """How participants were allocated. Every field is optional: what the trial file does not state is None or
    empty, and the book says so instead of inventing it."""
    method: str = ""
    stated_block_sizes: tuple[int, ...] = ()
    seed: int | None = None
    accrual_start: dt.date | None = None
    strata: tuple[Stratum, ...] = ()
    list_file: str | None = None

    @property
    def strata_codes(self) -> list[str]:
        return [s.code for s in self.strata]


@dataclass(frozen=True)
class PrimaryEndpoint:
    """The primary endpoint: ``kind`` "time_to_event" (``code`` is the ADTTE parameter, tested at ``horizon_days``
    by the plan's primary test) or "continuous" (``code`` is an endpoint, tested by the MMRM contrast at ``visit``).
    Which events count and which censor is the matching ``time_to_event`` entry's."""
    code: str
    label: str
    kind: str = "time_to_event"
    horizon_days: int | None = None
    visit: str | None = None

    @property
    def is_time_to_event(self) -> bool:
        return self.kind == "time_to_event"


@dataclass(frozen=True)
class EventType:
    """A kind of record of the events file that ends follow-up (``role`` "death", "intercurrent", "withdrawal" or
    "completed"), named as the export writes it (``code``) and as prose names it (``label``, e.g. "Kidney failure")."""
    code: str
    label: str
    role: str

    @property
    def term(self) -> str:
        """The short name a table's note uses: the code in lower case, underscores as spaces ('kidney failure')."""
        return self.code.lower().replace("_", " ")


# Every trial's end-of-follow-up vocabulary; a trial file adds its intercurrent events (``events.intercurrent``).
STANDARD_EVENTS = (EventType("DEATH", "Death", "death"), EventType("WITHDRAWAL", "Withdrawal", "withdrawal"),
                   EventType("COMPLETED", "Completed the study", "completed"))
ADVERSE_EVENT = "AE"


@dataclass(frozen=True)
class TimeToEvent:
    """A time-to-event parameter (ADTTE PARAMCD ``code``): time from study day 1 to the first of ``events``
    (event types), censored at the first of ``censors`` (intercurrent events that end the participant's follow-up for
    this endpoint), at the last contact, at the horizon or at the data cut-off."""
    code: str
    label: str
    events: tuple[str, ...]
    censors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Covariate:
    """A row of Table 1: an ADSL variable (``code``), its label and unit, continuous or categorical."""
    code: str
    label: str
    type: str = "continuous"
    unit: str = ""


# The simulator's assumptions when the trial file states none (the book names each one it had to assume).
SIMULATION_DEFAULTS = {"seed": 1, "accrual_start": None, "screened_per_randomized": 1.5, "death_rate_24w": 0.15,
                       "withdrawal_rate": 0.05, "missed_visit_rate": 0.05}


@dataclass(frozen=True)
class Simulation:
    """Assumptions of the synthetic cohort (used only on simulated data and by the design chapter). ``stated``:
    the keys the trial file gives; any other assumption is the book's default (``SIMULATION_DEFAULTS``)."""
    seed: int = SIMULATION_DEFAULTS["seed"]
    accrual_start: dt.date | None = None
    screened_per_randomized: float = SIMULATION_DEFAULTS["screened_per_randomized"]
    death_rate_24w: float = SIMULATION_DEFAULTS["death_rate_24w"]
    withdrawal_rate: float = SIMULATION_DEFAULTS["withdrawal_rate"]
    missed_visit_rate: float = SIMULATION_DEFAULTS["missed_visit_rate"]
    effects: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    doses_per_arm: tuple[tuple[str, int], ...] = ()
    stated: frozenset = frozenset()

    def effect_map(self) -> dict[str, dict[str, float]]:
        """Each non-control arm's effect on each endpoint (change at the last visit vs control)."""
        return {arm: dict(e) for arm, e in self.effects}

    def doses(self, arm: str) -> int:
        return dict(self.doses_per_arm).get(arm, 1)

    @property
    def defaulted(self) -> list[str]:
        """The assumptions the trial file does not state (so the book's defaults are used)."""
        return [k for k in SIMULATION_DEFAULTS if k not in self.stated]


# Components each derived score needs from the panel (and clinical grades for Child-Pugh).
SCORE_COMPONENTS = {
    "MELD": ("TBIL", "INR", "CREAT"),
    "MELDNA": ("TBIL", "INR", "CREAT", "SODIUM"),
    "CPSCORE": ("TBIL", "ALB", "INR"),
}
SCORE_LABELS = {"MELD": ("MELD score", "points"), "MELDNA": ("MELD-Na score", "points"),
                "CPSCORE": ("Child-Pugh score", "points")}


@dataclass(frozen=True)
class Endpoint:
    code: str
    label: str
    unit: str
    log: bool
    better: str
    source: str

    @property
    def label_with_unit(self) -> str:
        """Label with unit, as a table row or axis title reads it."""
        return label_with_unit(self.label, self.unit)


@dataclass(frozen=True)
class Trial:
    id: str
    title: str
    short_title: str
    site: str
    population: str
    design: str
    planned_n: int
    accrual_months: int
    followup_weeks: int
    arms: tuple[Arm, ...]
    control_arm: str
    randomization: Randomization
    visits: tuple[Visit, ...]
    endpoints: tuple[Endpoint, ...]
    primary_endpoint: PrimaryEndpoint
    baseline_covariates: tuple[Covariate, ...]
    key_secondary: str | None = None
    simulation: Simulation = Simulation()
    source: Path | None = None
    lab_panel: tuple[LabTest, ...] = ()
    eligibility: tuple[Criterion, ...] = ()
    age_range: tuple[int, int] | None = None
    treatment: Treatment = Treatment()
    cutoff: dt.date | None = None
    alpha: float = 0.05
    primary_test: str = "fisher"
    background: str = ""
    procedure_terms: tuple[str, ...] = ()
    adverse_events_collected: bool = True
    events: tuple[EventType, ...] = STANDARD_EVENTS
    time_to_event: tuple[TimeToEvent, ...] = ()
    masked_from: "Trial | None" = field(default=None, repr=False, compare=False)
    masking_codes: dict = field(default_factory=dict, repr=False, compare=False)

    # --- rules derived from the trial file, defined once --------------------------------------

    @property
    def control(self) -> Arm:
        return next(a for a in self.arms if a.code == self.control_arm)

    @property
    def experimental_arms(self) -> list[Arm]:
        """Every arm but the control, in the trial file's order."""
        return [a for a in self.arms if a.code != self.control_arm]

    @property
    def arm_order(self) -> list[Arm]:
        """The control arm first, then the experimental arms: the order of every comparison."""
        return [self.control] + self.experimental_arms

    @property
    def horizon_days(self) -> int:
        """The primary endpoint's horizon in days (trial file), else the follow-up in weeks x 7."""
        stated = self.primary_endpoint.horizon_days
        return int(7 * self.followup_weeks if stated is None else stated)

    @property
    def block_sizes(self) -> list[int]:
        """The trial file's block sizes; without any, blocks of twice the allocation ratio total."""
        return list(self.randomization.stated_block_sizes) or [2 * sum(a.ratio for a in self.arms)]

    @property
    def strata(self) -> list[str]:
        """The stratification factors' codes (ADSL columns), in the trial file's order."""
        return self.randomization.strata_codes

    @property
    def has_dosing_file(self) -> bool:
        """Whether the export must carry the dosing file: only when day 1 is the first dose."""
        return self.treatment.start == "first_dose"

    @property
    def intercurrent_events(self) -> list[EventType]:
        """The trial's intercurrent events (e.g. kidney failure), in the trial file's order."""
        return [e for e in self.events if e.role == "intercurrent"]

    def event_type(self, code: str) -> EventType:
        return next(e for e in self.events if e.code == code)

    @property
    def end_of_follow_up_codes(self) -> list[str]:
        """Event types that end a participant's follow-up: death, the intercurrent events, withdrawal, completion."""
        return [e.code for e in self.events]

    @property
    def early_end_codes(self) -> list[str]:
        """Event types that end follow-up before its planned end: death, the intercurrent events and withdrawal."""
        return [e.code for e in self.events if e.role != "completed"]

    def tte(self, code: str) -> TimeToEvent:
        return next(t for t in self.time_to_event if t.code == code)

    @property
    def lead_tte(self) -> TimeToEvent:
        """The time-to-event endpoint the survival chapter leads with: the primary endpoint's when it is time to
        event, else the first the trial file declares."""
        pe = self.primary_endpoint
        return self.tte(pe.code) if pe.is_time_to_event else self.time_to_event[0]

    def event_label(self, code: str) -> str:
        return self.event_type(code).label

    def counts_as_event(self, code: str, tte: TimeToEvent | None = None) -> bool:
        """Whether an event type is an event of ``tte`` (default: the lead time-to-event endpoint)."""
        return code in (tte or self.lead_tte).events

    def censors(self, code: str, tte: TimeToEvent | None = None) -> bool:
        """Whether an event type ends follow-up for ``tte`` (default: the lead one) as a censoring."""
        return code in (tte or self.lead_tte).censors

    @property
    def accrual_start(self) -> dt.date | None:
        """First day of randomization: the randomization section's, else the simulation's, else not stated."""
        return self.randomization.accrual_start or self.simulation.accrual_start

    @property
    def primary_visit(self) -> Visit | None:
        """The visit of a continuous primary endpoint's contrast (default: the last visit); None for time to event."""
        pe = self.primary_endpoint
        if pe.is_time_to_event:
            return None
        return self.visit(pe.visit) if pe.visit else self.last_visit

    @property
    def last_visit(self) -> Visit:
        """The last scheduled visit (largest week): where the key secondary endpoint is tested."""
        return max(self.visits, key=lambda v: v.week)

    def with_cutoff(self, cutoff: str | dt.date | None) -> "Trial":
        """The same trial at another data cut-off (a build parameter overrides the trial file)."""
        if cutoff is None or cutoff == "":
            return self
        return replace(self, cutoff=parse_cutoff(cutoff))

    @property
    def is_blinded(self) -> bool:
        return self.masked_from is not None

    def masking(self, key: str | None = None) -> dict[str, str]:
        """Each arm code's masked code (A, B, ...), shuffled by ``key`` (default: the randomization seed), so that
        the trial file alone does not say which letter is which arm, nor which is the control."""
        letters = [chr(ord("A") + i) for i in range(len(self.arms))]
        digest = hashlib.sha256(str(key or self.randomization.seed).encode()).digest()
        random.Random(digest).shuffle(letters)
        return {a.code: letter for a, letter in zip(self.arms, letters)}

    def blinded(self, key: str | None = None) -> "Trial":
        """The trial as a blinded data review sees it: arms masked as Arm A, Arm B, ..., Arm A the reference of
        every comparison (whichever arm it is), and no title or background that names an arm."""
        codes = self.masking(key)
        arms = tuple(sorted((replace(a, code=codes[a.code], label=f"Arm {codes[a.code]}",
                                     description=f"masked arm {codes[a.code]}") for a in self.arms),
                            key=lambda a: a.code))
        return replace(self, arms=arms, control_arm=arms[0].code, title="Blinded data review",
                       short_title="blinded data review", background="",
                       simulation=replace(self.simulation, effects=()), masked_from=self,
                       masking_codes=codes)

    @property
    def is_interim(self) -> bool:
        return self.cutoff is not None

    @property
    def lab_codes(self) -> list[str]:
        return [t.code for t in self.lab_panel]

    def lab(self, code: str) -> LabTest:
        return next(t for t in self.lab_panel if t.code == code)

    @property
    def derived_scores(self) -> list[str]:
        """The scores (MELD, MELD-Na, Child-Pugh) whose components the panel measures."""
        return [s for s, parts in SCORE_COMPONENTS.items() if set(parts) <= set(self.lab_codes)]

    @property
    def arm_codes(self) -> list[str]:
        return [a.code for a in self.arms]

    @property
    def arm_labels(self) -> dict[str, str]:
        return {a.code: a.label for a in self.arms}

    @property
    def visit_codes(self) -> list[str]:
        return [v.code for v in self.visits]

    @property
    def baseline_visit(self) -> Visit:
        return next(v for v in self.visits if v.is_baseline)

    @property
    def followup_visits(self) -> list[Visit]:
        return [v for v in self.visits if not v.is_baseline]

    def visit(self, code: str) -> Visit:
        return next(v for v in self.visits if v.code == code)

    def endpoint(self, code: str) -> Endpoint:
        return next(e for e in self.endpoints if e.code == code)

    @property
    def lab_endpoints(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.source == "lab"]


class TrialFileError(ValueError):
    """A trial file that is missing a field or contradicts itself."""


def _date(value, path, name) -> dt.date:
    try:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    except ValueError:
        raise TrialFileError(f"{path}: {name} {value!r} is not a date (YYYY-MM-DD)") from None


class CutoffError(TrialFileError):
    """A data cut-off given as a build parameter (--cutoff, CUTOFF=) that is not a date."""


def parse_cutoff(value: str | dt.date) -> dt.date:
    """A data cut-off given as a build parameter; CutoffError names the option, not the trial file."""
    try:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise CutoffError(f"data cut-off {value!r} (command-line option --cutoff, or CUTOFF= with make) is not a "
                          "date: give it as YYYY-MM-DD, e.g. --cutoff 2025-10-01") from None


def _range(value, default) -> tuple[float, float]:
    if value is None:
        return default
    lo, hi = value
    return (float("-inf") if lo is None else float(lo), float("inf") if hi is None else float(hi))


def _lab_panel(raw: dict) -> tuple[LabTest, ...]:
    return tuple(LabTest(code=t["code"], label=t["label"], unit=str(t.get("unit", "")),
                         units=tuple((str(u), float(f)) for u, f in (t.get("units") or {}).items()),
                         impossible=_range(t.get("impossible"), (0.0, float("inf"))),
                         expected=_range(t.get("expected"), None) if t.get("expected") else None,
                         decimals=int(t.get("decimals", 1)))
                 for t in raw.get("lab_panel", []))


def _eligibility(raw: dict) -> tuple[tuple[Criterion, ...], tuple[int, int] | None]:
    spec = raw.get("eligibility") or {}
    out = []
    for kind in ("inclusion", "exclusion"):
        for i, c in enumerate(spec.get(kind, []), start=2 if kind == "inclusion" and spec.get("age") else 1):
            out.append(Criterion(c["column"], kind, int(c.get("number", i)), c["label"], bool(c.get("consent", False))))
    age = tuple(int(a) for a in spec["age"]) if spec.get("age") else None
    return tuple(out), age


def _treatment(raw: dict) -> Treatment:
    t = raw.get("treatment") or {}
    return Treatment(start=t.get("start", "first_dose"), noun=t.get("noun", "infusion"), route=t.get("route", ""),
                     dose_unit=str(t.get("dose_unit", "")), dose_range=_range(t.get("dose_range"), (0.0, float("inf"))))


def _safety(raw: dict, path: Path) -> dict:
    """The ``safety`` section: ``adverse_events_collected`` (default true: the events file's AE rows are the adverse
    events) and ``procedure_terms`` (verbatim-term fragments of procedure-related events; default none)."""
    spec = raw.get("safety") or {}
    if not isinstance(spec, dict):
        raise TrialFileError(f"{path}: safety must be a mapping, e.g. safety: {{adverse_events_collected: false}}")
    known = ("adverse_events_collected", "procedure_terms")
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise TrialFileError(f"{path}: safety: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    value = spec.get("adverse_events_collected", True)
    if not isinstance(value, bool):
        raise TrialFileError(f"{path}: safety.adverse_events_collected must be true or false, got {value!r}")
    terms = spec.get("procedure_terms") or []
    if not isinstance(terms, list):
        raise TrialFileError(f"{path}: safety.procedure_terms must be a list of terms, got {terms!r}")
    return {"adverse_events_collected": value, "procedure_terms": tuple(str(t).lower() for t in terms)}


def _strata(value, path) -> tuple[Stratum, ...]:
    out = []
    for s in value or []:
        if isinstance(s, dict):
            if "code" not in s:
                raise TrialFileError(f"{path}: randomization.strata: a factor needs a code, got {s!r}")
            out.append(Stratum(str(s["code"]), tuple(str(v) for v in s.get("levels") or ())))
        else:
            out.append(Stratum(str(s)))
    return tuple(out)


def _known_keys(spec: dict, known, where: str, path) -> None:
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise TrialFileError(f"{path}: {where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")


def _randomization(raw: dict, path) -> Randomization:
    spec = raw.get("randomization") or {}
    _known_keys(spec, ("method", "block_sizes", "seed", "accrual_start", "strata", "list_file"), "randomization", path)
    return Randomization(method=str(spec.get("method") or ""),
                         stated_block_sizes=tuple(int(b) for b in spec.get("block_sizes") or ()),
                         seed=None if spec.get("seed") is None else int(spec["seed"]),
                         accrual_start=_date(spec["accrual_start"], path, "randomization.accrual_start")
                         if spec.get("accrual_start") else None,
                         strata=_strata(spec.get("strata"), path),
                         list_file=None if spec.get("list_file") is None else str(spec["list_file"]))


PRIMARY_KINDS = ("time_to_event", "continuous")


def _events(raw: dict, path) -> tuple[EventType, ...]:
    """The standard end-of-follow-up events plus the trial's intercurrent events (``events.intercurrent``: a list of
    ``{code, label}``, codes as the events file writes them)."""
    spec = raw.get("events") or {}
    _known_keys(spec, ("intercurrent",), "events", path)
    extra = []
    for e in spec.get("intercurrent") or []:
        if not isinstance(e, dict) or "code" not in e or "label" not in e:
            raise TrialFileError(f"{path}: events.intercurrent: each event needs a code and a label, got {e!r}")
        extra.append(EventType(str(e["code"]), str(e["label"]), "intercurrent"))
    return STANDARD_EVENTS[:1] + tuple(extra) + STANDARD_EVENTS[1:]


def _time_to_event(raw: dict, path) -> tuple[TimeToEvent, ...]:
    """``time_to_event``: a list of ``{code, label, events, censors}``; without it, overall survival (code and label of
    a time-to-event primary endpoint, else OS), with death the event and no other censoring than the end of follow-up."""
    spec = raw.get("time_to_event")
    if spec is None:
        pe = raw.get("primary_endpoint") or {}
        tte = (pe.get("kind", "time_to_event") == "time_to_event")
        return (TimeToEvent(str(pe.get("code", "OS")) if tte else "OS",
                            str(pe.get("label") or "Overall survival") if tte else "Overall survival", ("DEATH",)),)
    out = []
    for t in spec:
        if not isinstance(t, dict):
            raise TrialFileError(f"{path}: time_to_event: each endpoint is a mapping {{code, label, events, censors}}")
        _known_keys(t, ("code", "label", "events", "censors"), f"time_to_event ({t.get('code')})", path)
        if not t.get("code") or not t.get("events"):
            raise TrialFileError(f"{path}: time_to_event: {t!r} needs a code and a list of events")
        out.append(TimeToEvent(str(t["code"]), str(t.get("label") or t["code"]), tuple(map(str, t["events"])),
                               tuple(map(str, t.get("censors") or ()))))
    return tuple(out)


def _primary_endpoint(raw: dict, path) -> PrimaryEndpoint:
    spec = raw["primary_endpoint"] or {}
    _known_keys(spec, ("code", "label", "kind", "horizon_days", "visit"), "primary_endpoint", path)
    if "code" not in spec:
        raise TrialFileError(f"{path}: primary_endpoint.code is missing")
    named_test = (raw.get("analysis_plan") or {}).get("primary_test")
    if spec.get("kind") == "continuous" and named_test is not None:
        raise TrialFileError(f"{path}: analysis_plan.primary_test ({named_test}) applies to a time-to-event primary "
                             "endpoint only; a continuous primary endpoint is tested by the MMRM contrast at its visit "
                             "(remove primary_test)")
    return PrimaryEndpoint(code=str(spec["code"]), label=str(spec.get("label") or spec["code"]),
                           kind=str(spec.get("kind", "time_to_event")),
                           horizon_days=None if spec.get("horizon_days") is None else int(spec["horizon_days"]),
                           visit=None if spec.get("visit") is None else str(spec["visit"]))


def _covariates(raw: dict, path) -> tuple[Covariate, ...]:
    out = []
    for c in raw.get("baseline_covariates") or []:
        _known_keys(c, ("code", "label", "type", "unit"), f"baseline_covariates ({c.get('code')})", path)
        out.append(Covariate(str(c["code"]), str(c.get("label", c["code"])), str(c.get("type", "continuous")),
                             str(c.get("unit") or "")))
    return tuple(out)


def _simulation(raw: dict, path) -> Simulation:
    spec = raw.get("simulation") or {}
    known = tuple(SIMULATION_DEFAULTS) + ("effects", "doses_per_arm")
    _known_keys(spec, known, "simulation", path)
    stated = {k: spec[k] for k in SIMULATION_DEFAULTS if spec.get(k) is not None}
    if "accrual_start" in stated:
        stated["accrual_start"] = _date(stated["accrual_start"], path, "simulation.accrual_start")
    effects = tuple((str(arm), tuple((str(c), float(v)) for c, v in (e or {}).items()))
                    for arm, e in (spec.get("effects") or {}).items())
    doses = tuple((str(arm), int(n)) for arm, n in (spec.get("doses_per_arm") or {}).items())
    return Simulation(**stated, effects=effects, doses_per_arm=doses, stated=frozenset(stated))


_REQUIRED = ("id", "title", "planned_n", "accrual_months", "arms", "control_arm", "randomization",
             "visits", "endpoints", "primary_endpoint")


PRIMARY_TESTS = ("fisher", "logrank", "cox")


def load_trial(trial: str | os.PathLike = paths.DEFAULT_TRIAL) -> Trial:
    """Read and check a trial file given by id (looked up in trials/) or by path."""
    path = paths.trial_file(trial)
    if not path.exists():
        raise TrialFileError(f"{path}: trial file not found")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise TrialFileError(f"{path}: missing field(s) {', '.join(missing)}")
    arms = tuple(Arm(a["code"], a["label"], a.get("description", a["label"]), int(a.get("ratio", 1)))
                 for a in raw["arms"])
    visits = tuple(Visit(v["code"], v["label"], int(v["week"]), int(v["day"]), tuple(v["window"]))
                   for v in raw["visits"])
    criteria, age_range = _eligibility(raw)
    endpoints = tuple(Endpoint(e["code"], e["label"], str(e.get("unit", "")), bool(e.get("log", False)),
                               e.get("better", "lower"), e.get("source", "lab"))
                      for e in raw["endpoints"])
    trial = Trial(
        id=raw["id"], title=raw["title"], short_title=raw.get("short_title", raw["title"]),
        site=raw.get("site", ""), population=raw.get("population", ""), design=raw.get("design", ""),
        planned_n=int(raw["planned_n"]), accrual_months=int(raw["accrual_months"]),
        followup_weeks=int(raw.get("followup_weeks", max(v.week for v in visits))),
        arms=arms, control_arm=raw["control_arm"], randomization=_randomization(raw, path),
        visits=visits, endpoints=endpoints, primary_endpoint=_primary_endpoint(raw, path),
        baseline_covariates=_covariates(raw, path),
        key_secondary=raw.get("key_secondary"),
        simulation=_simulation(raw, path), source=path,
        lab_panel=_lab_panel(raw), eligibility=criteria, age_range=age_range, treatment=_treatment(raw),
        cutoff=_date(raw["cutoff"], path, "cutoff") if raw.get("cutoff") else None,
        alpha=float(raw.get("analysis_plan", {}).get("alpha", 0.05)),
        primary_test=raw.get("analysis_plan", {}).get("primary_test", "fisher"),
        background=" ".join(str(raw.get("background", "")).split()),
        events=_events(raw, path), time_to_event=_time_to_event(raw, path),
        **_safety(raw, path))
    _check(trial, path)
    return trial


def _check(trial: Trial, path: Path) -> None:
    problems = []
    if trial.control_arm not in trial.arm_codes:
        problems.append(f"control_arm {trial.control_arm!r} is not one of the arms {trial.arm_codes}")
    if sum(v.is_baseline for v in trial.visits) != 1:
        problems.append("exactly one visit must have week 0 (baseline)")
    for v in trial.visits:
        if not v.window[0] <= v.day <= v.window[1]:
            problems.append(f"visit {v.code}: target day {v.day} outside its window {list(v.window)}")
    block_unit = sum(a.ratio for a in trial.arms)
    for b in trial.randomization.stated_block_sizes:
        if b % block_unit:
            problems.append(f"block size {b} is not a multiple of the allocation ratio total {block_unit}")
    if trial.key_secondary is not None and trial.key_secondary not in [e.code for e in trial.endpoints]:
        problems.append(f"key_secondary {trial.key_secondary!r} is not one of the endpoints")
    for e in trial.endpoints:
        if e.better not in ("lower", "higher"):
            problems.append(f"endpoint {e.code}: better must be 'lower' or 'higher'")
    for e in trial.endpoints:
        if e.source == "lab" and e.code not in trial.lab_codes:
            problems.append(f"endpoint {e.code}: not a test of the lab_panel {trial.lab_codes}")
        if e.source == "derived" and e.code not in trial.derived_scores:
            needs = ", ".join(SCORE_COMPONENTS.get(e.code, ("?",)))
            problems.append(f"endpoint {e.code}: cannot be derived from the lab_panel (needs {needs})")
    for t in trial.lab_panel:
        lo, hi = t.impossible
        if t.expected and not (lo <= t.expected[0] <= t.expected[1] <= hi):
            problems.append(f"lab {t.code}: expected range {list(t.expected)} must lie inside the impossible limits")
    if trial.treatment.start not in ("first_dose", "randomization"):
        problems.append("treatment.start must be 'first_dose' or 'randomization'")
    pe = trial.primary_endpoint
    if pe.kind not in PRIMARY_KINDS:
        problems.append(f"primary_endpoint.kind must be one of {list(PRIMARY_KINDS)}, got {pe.kind!r}")
    if pe.kind == "continuous":
        if pe.code not in [e.code for e in trial.endpoints]:
            problems.append(f"primary_endpoint.code {pe.code!r}: a continuous primary endpoint must be one of the "
                            f"endpoints {[e.code for e in trial.endpoints]}")
        if pe.visit is not None and pe.visit not in trial.visit_codes:
            problems.append(f"primary_endpoint.visit {pe.visit!r} is not one of the visits {trial.visit_codes}")
        if pe.visit is not None and pe.visit == trial.baseline_visit.code:
            problems.append("primary_endpoint.visit cannot be the baseline visit")
        if trial.key_secondary == pe.code:
            problems.append(f"key_secondary {pe.code!r} is the primary endpoint")
    known_events = ["DEATH"] + [e.code for e in trial.intercurrent_events]
    for t in trial.time_to_event:
        for code in t.events + t.censors:
            if code not in known_events:
                problems.append(f"time_to_event {t.code}: {code!r} is not DEATH or an intercurrent event "
                                f"(known: {known_events}; declare intercurrent events under events.intercurrent; "
                                "withdrawal and completion always censor at the last contact)")
        if set(t.events) & set(t.censors):
            problems.append(f"time_to_event {t.code}: an event type cannot both count as an event and censor")
    if pe.is_time_to_event and pe.code not in [t.code for t in trial.time_to_event]:
        problems.append(f"primary_endpoint.code {pe.code!r} is not one of the time_to_event endpoints "
                        f"{[t.code for t in trial.time_to_event]}")
    if trial.primary_test not in PRIMARY_TESTS:
        problems.append(f"analysis_plan.primary_test must be one of {list(PRIMARY_TESTS)}")
    if not 0 < trial.alpha < 1:
        problems.append("analysis_plan.alpha must lie between 0 and 1")
    if problems:
        raise TrialFileError(f"{path}: " + "; ".join(problems))
