"""The trial described as data: read a YAML trial file into a small, typed object."""
from __future__ import annotations

import datetime as dt
import hashlib
import math
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
    ``transplant``: how a transplant record is handled in the time-to-event analysis ("censor" or "event")."""
    code: str
    label: str
    kind: str = "time_to_event"
    horizon_days: int | None = None
    visit: str | None = None
    transplant: str = "censor"

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
    """A row of Table 1: an ADSL variable (``code``), its label and unit, continuous or categorical, and a categorical
    variable's ``levels`` when the trial file lists them (the export's codes for it, e.g. causes of disease)."""
    code: str
    label: str
    type: str = "continuous"
    unit: str = ""
    levels: tuple[str, ...] = ()


# The simulator's assumptions when the trial file states none (the book names each one it had to assume).
SIMULATION_DEFAULTS = {"seed": 1, "accrual_start": None, "screened_per_randomized": 1.5, "death_rate_24w": 0.15,
                       "withdrawal_rate": 0.05, "missed_visit_rate": 0.05}


@dataclass(frozen=True)
class LabModel:
    """The synthetic cohort's model of one laboratory test (``simulation.labs.<CODE>``).

    On the analysis scale (log when ``log``): baseline ``median`` + ``severity`` x the participant's latent severity
    (SD units) + a random intercept (SD ``between_sd``) + a serially correlated residual (SD ``within_sd``) + the
    common change ``trend`` by the last visit, clipped to ``low``-``high`` on the natural scale. ``correlated``:
    (another test, r), the correlation of the two random intercepts; ``shift``: (a baseline category column,
    ((level, shift on the analysis scale), ...)); ``below_limit``: the lowest result is reported below a limit in a
    realistic export. A test ``source``d from another is ``factor`` x that test + N(0, ``within_sd``).
    ``stated``: False for the book's generic default (``defaulted_lab_model``), made up from the panel's range."""
    code: str
    log: bool = True
    median: float = 1.0
    severity: float = 0.0
    between_sd: float = 0.0
    within_sd: float = 0.0
    trend: float = 0.0
    low: float = float("-inf")
    high: float = float("inf")
    correlated: tuple[str, float] | None = None
    shift: tuple[str, tuple[tuple[str, float], ...]] | None = None
    below_limit: bool = False
    source: str | None = None
    factor: float = 1.0
    stated: bool = True


# Share of the expected range's width (log scale when its lower end is positive) taken as the SD between participants
# in a lab model the trial file does not state; the SD within a participant is half of it.
DEFAULT_LAB_SPREAD = 1 / 12


def defaulted_lab_model(test: "LabTest") -> LabModel | None:
    """The book's generic model for a panel test the trial file gives no model for, from its ``expected`` range (else
    its finite ``impossible`` limits): log-normal with the median at the geometric middle of the range when it is
    positive (normal around the arithmetic middle otherwise), between-participant SD a twelfth of the range's width
    on that scale, within-participant SD half that, no severity loading, no trend, clipped to the range. None when
    the panel gives no finite range."""
    lo, hi = test.expected or test.impossible
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        return None
    log = lo > 0
    width = math.log(hi / lo) if log else hi - lo
    return LabModel(test.code, log=log, median=math.sqrt(lo * hi) if log else (lo + hi) / 2,
                    between_sd=DEFAULT_LAB_SPREAD * width, within_sd=DEFAULT_LAB_SPREAD * width / 2,
                    low=lo, high=hi, stated=False)


@dataclass(frozen=True)
class Grade:
    """A clinical grade of the clinical file (``simulation.clinical.grades.<column>``): a latent score ``severity`` x
    the participant's severity at the visit + N(0, ``between_sd``) per participant + N(0, ``within_sd``) per visit,
    cut at ``cuts`` into ``levels`` (one more level than cuts)."""
    column: str
    severity: float
    between_sd: float
    within_sd: float
    cuts: tuple[float, ...]
    levels: tuple[str, ...]


@dataclass(frozen=True)
class ClinicalFlag:
    """A Y/N column of the clinical file (``simulation.clinical.flags.<column>``): Y with ``probability`` when the
    lab test ``lab`` is above ``above``, and with ``otherwise`` at any visit."""
    column: str
    lab: str
    above: float
    probability: float
    otherwise: float = 0.0


@dataclass(frozen=True)
class ClinicalModel:
    """The clinical file's model (``simulation.clinical``): the severity at a visit is the baseline severity moved by
    the change of the lab test ``follows`` (over its severity loading); grades and flags follow it."""
    follows: str
    grades: tuple[Grade, ...] = ()
    flags: tuple[ClinicalFlag, ...] = ()


@dataclass(frozen=True)
class EventModel:
    """An intercurrent event of the synthetic cohort (``simulation.event_rates.<CODE>``): probability ``rate`` by the
    horizon without treatment, hazard rising by ``severity`` per SD of latent severity; ``term`` as the events file
    writes it (default: the event's label). ``stated``: False when the trial file gives no rate (the book's default)."""
    code: str
    rate: float
    severity: float = 1.0
    term: str = ""
    stated: bool = True


# Probability of an intercurrent event by the horizon when the trial file states none (the book says it assumed it).
DEFAULT_EVENT_RATE = 0.05


@dataclass(frozen=True)
class AdverseEventModel:
    """Adverse events of the synthetic cohort (``simulation.adverse_events``): after each dose, a Poisson number
    (mean ``after_dose_rate``) of ``after_dose`` terms (term, weight); per dose of an arm, each of its ``by_arm``
    terms (term, probability); over follow-up, a Poisson number (mean ``per_24_weeks`` per 24 weeks at average
    severity) of ``during_follow_up`` terms (term, weight, probability serious)."""
    after_dose_rate: float = 0.0
    after_dose: tuple[tuple[str, float], ...] = ()
    by_arm: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    per_24_weeks: float = 0.0
    during_follow_up: tuple[tuple[str, float, float], ...] = ()

    def arm_terms(self, arm: str) -> dict[str, float]:
        return dict(dict(self.by_arm).get(arm, ()))


@dataclass(frozen=True)
class Simulation:
    """Assumptions of the synthetic cohort (used only on simulated data and by the design chapter). ``stated``:
    the keys the trial file gives; any other assumption is the book's default (``SIMULATION_DEFAULTS``).

    The disease as the cohort models it also comes from here: ``baseline`` (categorical columns of the screening log,
    (column, ((level, relative frequency), ...))), ``labs`` (``LabModel`` per test, in drawing order),
    ``clinical`` (grades and flags of the clinical file; None: no clinical file), ``events`` (an ``EventModel`` per
    intercurrent event), ``death_causes`` ((cause, weight), ...), ``adverse_events``, ``screen_failures`` (relative
    frequency of a screen failure by a criterion's column), ``unscheduled_reasons`` (comments of unscheduled
    samples), the age (mean, SD in years), the share of women, and the typical ``dose`` (in the dose unit)."""
    seed: int = SIMULATION_DEFAULTS["seed"]
    accrual_start: dt.date | None = None
    screened_per_randomized: float = SIMULATION_DEFAULTS["screened_per_randomized"]
    death_rate_24w: float = SIMULATION_DEFAULTS["death_rate_24w"]
    withdrawal_rate: float = SIMULATION_DEFAULTS["withdrawal_rate"]
    missed_visit_rate: float = SIMULATION_DEFAULTS["missed_visit_rate"]
    effects: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    doses_per_arm: tuple[tuple[str, int], ...] = ()
    stated: frozenset = frozenset()
    baseline: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    labs: tuple[LabModel, ...] = ()
    clinical: ClinicalModel | None = None
    events: tuple[EventModel, ...] = ()
    death_causes: tuple[tuple[str, float], ...] = ()
    adverse_events: AdverseEventModel = AdverseEventModel()
    screen_failures: tuple[tuple[str, float], ...] = ()
    unscheduled_reasons: tuple[str, ...] = ("suspected infection", "clinical worsening", "repeat test requested")
    age: tuple[float, float] = (54.0, 11.0)
    female: float = 0.3
    dose: float = 1.0

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
    def censors_transplant(self) -> bool:
        """True when liver transplantation censors overall survival (the trial file's default), False when it
        is an event with death."""
        return self.primary_endpoint.transplant == "censor"

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
        """The trial's intercurrent events (e.g. a transplant, kidney failure), in the trial file's order."""
        return [e for e in self.events if e.role == "intercurrent"]

    def event_type(self, code: str) -> EventType:
        return next(e for e in self.events if e.code == code)

    @property
    def end_of_follow_up_codes(self) -> list[str]:
        """Event types that end a participant's follow-up: death, the intercurrent events, withdrawal, completion."""
        return [e.code for e in self.events]

    def tte(self, code: str) -> TimeToEvent:
        return next(t for t in self.time_to_event if t.code == code)

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
    _known_keys(spec, ("code", "label", "kind", "horizon_days", "visit", "transplant"), "primary_endpoint", path)
    if "code" not in spec:
        raise TrialFileError(f"{path}: primary_endpoint.code is missing")
    return PrimaryEndpoint(code=str(spec["code"]), label=str(spec.get("label") or spec["code"]),
                           kind=str(spec.get("kind", "time_to_event")),
                           horizon_days=None if spec.get("horizon_days") is None else int(spec["horizon_days"]),
                           visit=None if spec.get("visit") is None else str(spec["visit"]),
                           transplant=str(spec.get("transplant", "censor")))


def _covariates(raw: dict, path) -> tuple[Covariate, ...]:
    out = []
    for c in raw.get("baseline_covariates") or []:
        _known_keys(c, ("code", "label", "type", "unit", "levels"), f"baseline_covariates ({c.get('code')})", path)
        out.append(Covariate(str(c["code"]), str(c.get("label", c["code"])), str(c.get("type", "continuous")),
                             str(c.get("unit") or ""), tuple(str(v) for v in c.get("levels") or ())))
    return tuple(out)


def _weights(value, where: str, path) -> tuple[tuple[str, float], ...]:
    """A mapping of names to non-negative numbers (relative frequencies, weights, probabilities), in file order."""
    if not isinstance(value, dict) or not value:
        raise TrialFileError(f"{path}: {where} must be a mapping of names to numbers, got {value!r}")
    out = []
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise TrialFileError(f"{path}: {where}.{k} must be a number >= 0, got {v!r}")
        out.append((str(k), float(v)))
    return tuple(out)


def _number(spec: dict, key: str, where: str, path, default=None) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TrialFileError(f"{path}: {where}.{key} must be a number, got {value!r}")
    return float(value)


LAB_MODEL_KEYS = ("log", "median", "severity", "between_sd", "within_sd", "trend", "low", "high", "correlated", "shift",
                  "below_limit", "from", "factor")


def _lab_model(code: str, spec, path) -> LabModel:
    where = f"simulation.labs.{code}"
    if not isinstance(spec, dict):
        raise TrialFileError(f"{path}: {where} must be a mapping, e.g. {{log: true, median: 60, between_sd: 0.3, "
                             "within_sd: 0.2, low: 3, high: 900}")
    _known_keys(spec, LAB_MODEL_KEYS, where, path)
    low, high = (_number(spec, k, where, path, d) for k, d in (("low", float("-inf")), ("high", float("inf"))))
    if spec.get("from") is not None:
        return LabModel(code, log=False, within_sd=_number(spec, "within_sd", where, path, 0.0), low=low, high=high,
                        source=str(spec["from"]), factor=_number(spec, "factor", where, path, 1.0),
                        below_limit=bool(spec.get("below_limit", False)))
    missing = [k for k in ("median", "between_sd", "within_sd") if k not in spec]
    if missing:
        raise TrialFileError(f"{path}: {where}: missing {', '.join(missing)}")
    correlated = spec.get("correlated")
    if correlated is not None:
        pairs = _weights(correlated, f"{where}.correlated", path)
        if len(pairs) != 1 or not pairs[0][1] < 1:
            raise TrialFileError(f"{path}: {where}.correlated must name one test and a correlation in [0, 1), "
                                 f"e.g. {{ALT: 0.6}}, got {correlated!r}")
        correlated = pairs[0]
    shift = spec.get("shift")
    if shift is not None:
        if not isinstance(shift, dict) or len(shift) != 1:
            raise TrialFileError(f"{path}: {where}.shift must name one baseline column and a shift per level, e.g. "
                                 f"{{etiology: {{PBC: 0.6}}}}, got {shift!r}")
        (column, levels), = shift.items()
        shift = (str(column), tuple((str(k), float(v)) for k, v in (levels or {}).items()))
    median = _number(spec, "median", where, path)
    log = bool(spec.get("log", True))
    if log and median <= 0:
        raise TrialFileError(f"{path}: {where}.median must be positive on the log scale, got {median}")
    return LabModel(code, log=log, median=median, severity=_number(spec, "severity", where, path, 0.0),
                    between_sd=_number(spec, "between_sd", where, path), within_sd=_number(spec, "within_sd", where, path),
                    trend=_number(spec, "trend", where, path, 0.0), low=low, high=high, correlated=correlated,
                    shift=shift, below_limit=bool(spec.get("below_limit", False)))


def _clinical_model(spec, path) -> ClinicalModel:
    where = "simulation.clinical"
    if not isinstance(spec, dict):
        raise TrialFileError(f"{path}: {where} must be a mapping {{follows, grades, flags}}")
    _known_keys(spec, ("follows", "grades", "flags"), where, path)
    if not spec.get("follows"):
        raise TrialFileError(f"{path}: {where}.follows must name the lab test the severity at a visit follows")
    grades = []
    for column, g in (spec.get("grades") or {}).items():
        w = f"{where}.grades.{column}"
        _known_keys(g or {}, ("severity", "between_sd", "within_sd", "cuts", "levels"), w, path)
        cuts, levels = tuple(float(c) for c in g.get("cuts") or ()), tuple(str(v) for v in g.get("levels") or ())
        if len(levels) != len(cuts) + 1 or list(cuts) != sorted(cuts):
            raise TrialFileError(f"{path}: {w}: needs increasing cuts and one level more than cuts, got {cuts} "
                                 f"and {levels}")
        grades.append(Grade(str(column), *(_number(g, k, w, path) for k in ("severity", "between_sd", "within_sd")),
                            cuts, levels))
    flags = []
    for column, f in (spec.get("flags") or {}).items():
        w = f"{where}.flags.{column}"
        _known_keys(f or {}, ("lab", "above", "probability", "otherwise"), w, path)
        if not f.get("lab"):
            raise TrialFileError(f"{path}: {w}.lab must name a lab test")
        flags.append(ClinicalFlag(str(column), str(f["lab"]), _number(f, "above", w, path),
                                  _number(f, "probability", w, path), _number(f, "otherwise", w, path, 0.0)))
    return ClinicalModel(str(spec["follows"]), tuple(grades), tuple(flags))


def _event_models(spec, path) -> tuple[EventModel, ...]:
    out = []
    for code, e in (spec or {}).items():
        where = f"simulation.event_rates.{code}"
        if isinstance(e, dict):
            _known_keys(e, ("rate", "severity", "term"), where, path)
            rate, severity, term = _number(e, "rate", where, path), _number(e, "severity", where, path, 1.0), e.get("term")
        else:
            rate, severity, term = _number({"rate": e}, "rate", where, path), 1.0, None
        if not 0 <= rate < 1:
            raise TrialFileError(f"{path}: {where}: a probability by the horizon lies in [0, 1), got {rate}")
        out.append(EventModel(str(code), rate, severity, "" if term is None else str(term)))
    return tuple(out)


def _adverse_event_model(spec, path) -> AdverseEventModel:
    where = "simulation.adverse_events"
    if not isinstance(spec, dict):
        raise TrialFileError(f"{path}: {where} must be a mapping {{after_dose, by_arm, during_follow_up}}")
    _known_keys(spec, ("after_dose", "by_arm", "during_follow_up"), where, path)
    after = spec.get("after_dose") or {}
    _known_keys(after, ("rate", "terms"), f"{where}.after_dose", path)
    during = spec.get("during_follow_up") or {}
    _known_keys(during, ("per_24_weeks", "terms"), f"{where}.during_follow_up", path)
    terms = []
    for term, t in (during.get("terms") or {}).items():
        w = f"{where}.during_follow_up.terms.{term}"
        if not isinstance(t, dict):
            raise TrialFileError(f"{path}: {w} must be {{weight: <relative frequency>, serious: <probability>}}")
        _known_keys(t, ("weight", "serious"), w, path)
        terms.append((str(term), _number(t, "weight", w, path), _number(t, "serious", w, path, 0.0)))
    return AdverseEventModel(
        after_dose_rate=_number(after, "rate", f"{where}.after_dose", path, 0.0),
        after_dose=_weights(after["terms"], f"{where}.after_dose.terms", path) if after.get("terms") else (),
        by_arm=tuple((str(arm), _weights(t, f"{where}.by_arm.{arm}", path))
                     for arm, t in (spec.get("by_arm") or {}).items()),
        per_24_weeks=_number(during, "per_24_weeks", f"{where}.during_follow_up", path, 0.0), during_follow_up=tuple(terms))


SIMULATION_MODEL_KEYS = ("effects", "doses_per_arm", "baseline", "labs", "clinical", "event_rates", "death_causes",
                         "adverse_events", "screen_failures", "unscheduled_reasons", "age", "female", "dose")


def _simulation(raw: dict, path) -> Simulation:
    spec = raw.get("simulation") or {}
    known = tuple(SIMULATION_DEFAULTS) + SIMULATION_MODEL_KEYS
    _known_keys(spec, known, "simulation", path)
    stated = {k: spec[k] for k in SIMULATION_DEFAULTS if spec.get(k) is not None}
    if "accrual_start" in stated:
        stated["accrual_start"] = _date(stated["accrual_start"], path, "simulation.accrual_start")
    effects = tuple((str(arm), tuple((str(c), float(v)) for c, v in (e or {}).items()))
                    for arm, e in (spec.get("effects") or {}).items())
    doses = tuple((str(arm), int(n)) for arm, n in (spec.get("doses_per_arm") or {}).items())
    models = {}
    if spec.get("baseline"):
        models["baseline"] = tuple((str(col), _weights(levels, f"simulation.baseline.{col}", path))
                                   for col, levels in spec["baseline"].items())
    if spec.get("labs"):
        models["labs"] = tuple(_lab_model(str(code), m, path) for code, m in spec["labs"].items())
    if spec.get("clinical"):
        models["clinical"] = _clinical_model(spec["clinical"], path)
    if spec.get("event_rates"):
        models["events"] = _event_models(spec["event_rates"], path)
    if spec.get("death_causes"):
        models["death_causes"] = _weights(spec["death_causes"], "simulation.death_causes", path)
    if spec.get("adverse_events"):
        models["adverse_events"] = _adverse_event_model(spec["adverse_events"], path)
    if spec.get("screen_failures"):
        models["screen_failures"] = _weights(spec["screen_failures"], "simulation.screen_failures", path)
    if spec.get("unscheduled_reasons"):
        models["unscheduled_reasons"] = tuple(str(r) for r in spec["unscheduled_reasons"])
    if spec.get("age") is not None:
        _known_keys(spec["age"], ("mean", "sd"), "simulation.age", path)
        models["age"] = (_number(spec["age"], "mean", "simulation.age", path),
                         _number(spec["age"], "sd", "simulation.age", path))
    for key in ("female", "dose"):
        if spec.get(key) is not None:
            models[key] = _number(spec, key, "simulation", path)
    return Simulation(**stated, effects=effects, doses_per_arm=doses, stated=frozenset(stated), **models)


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
    if pe.transplant not in ("censor", "event"):
        problems.append(f"primary_endpoint.transplant must be 'censor' or 'event', got {pe.transplant!r}")
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
    known_events = trial.end_of_follow_up_codes
    for t in trial.time_to_event:
        for code in t.events + t.censors:
            if code not in known_events:
                problems.append(f"time_to_event {t.code}: {code!r} is not an event type (known: {known_events}; "
                                "declare intercurrent events under events.intercurrent)")
        if set(t.events) & set(t.censors):
            problems.append(f"time_to_event {t.code}: an event type cannot both count as an event and censor")
    if pe.is_time_to_event and pe.code not in [t.code for t in trial.time_to_event]:
        problems.append(f"primary_endpoint.code {pe.code!r} is not one of the time_to_event endpoints "
                        f"{[t.code for t in trial.time_to_event]}")
    problems += _simulation_problems(trial)
    if trial.primary_test not in PRIMARY_TESTS:
        problems.append(f"analysis_plan.primary_test must be one of {list(PRIMARY_TESTS)}")
    if not 0 < trial.alpha < 1:
        problems.append("analysis_plan.alpha must lie between 0 and 1")
    if problems:
        raise TrialFileError(f"{path}: " + "; ".join(problems))


def _simulation_problems(trial: Trial) -> list[str]:
    """References of the simulation section that name nothing: an event rate of an event the trial does not declare,
    a lab model drawn from or correlated with a test not modelled before it, a shift by a baseline column the section
    does not simulate, a clinical model following a test that is not simulated."""
    sim = trial.simulation
    problems = []
    intercurrent = [e.code for e in trial.intercurrent_events]
    for e in sim.events:
        if e.code not in intercurrent:
            problems.append(f"simulation.event_rates.{e.code}: not an intercurrent event of the trial "
                            f"(events.intercurrent: {intercurrent})")
    seen, columns = [], [c for c, _ in sim.baseline]
    for m in sim.labs:
        for other, key in ((m.source, "from"), (m.correlated[0] if m.correlated else None, "correlated")):
            if other is not None and other not in seen:
                problems.append(f"simulation.labs.{m.code}.{key}: {other!r} is not a test modelled before it {seen}")
        if m.shift and m.shift[0] not in columns:
            problems.append(f"simulation.labs.{m.code}.shift: {m.shift[0]!r} is not a column of simulation.baseline "
                            f"{columns}")
        seen.append(m.code)
    if sim.clinical is not None:
        simulated = seen + [t.code for t in trial.lab_panel]
        for lab, key in [(sim.clinical.follows, "follows")] + [(f.lab, f"flags.{f.column}.lab") for f in sim.clinical.flags]:
            if lab not in simulated:
                problems.append(f"simulation.clinical.{key}: {lab!r} is not a simulated lab test {simulated}")
    return problems
