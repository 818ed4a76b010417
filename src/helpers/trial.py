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

from helpers import paths, scores


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

    def holds(self, day):
        """Whether a study day (a number, or a pandas Series of them) lies in the visit's window, ends included:
        the one rule that assigns a sample to a visit window (missing days: missing)."""
        return (day >= self.window[0]) & (day <= self.window[1])

    def target_on(self, day_one):
        """The date of the visit's target day, given study day 1 (a date or a pandas Series of dates)."""
        return date_of_study_day(day_one, self.day)

    def opens_on(self, day_one):
        """The date the visit's window opens, given study day 1."""
        return date_of_study_day(day_one, self.window[0])

    def closes_on(self, day_one):
        """The date the visit's window closes (its last day), given study day 1."""
        return date_of_study_day(day_one, self.window[1])


def study_day(date, day_one):
    """CDISC study day of a date (pandas Series) given study day 1: day 1 is day one, the day before it day -1
    (there is no day 0)."""
    delta = (date - day_one).dt.days
    return (delta + (delta >= 0)).astype("Int64")


def date_of_study_day(day_one, day: int):
    """The date of a study day (the inverse of ``study_day``: no day 0), given study day 1 (a date or a Series)."""
    return day_one + dt.timedelta(days=day - 1 if day > 0 else day)


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
    ``unit`` (e.g. a creatinine in mg/dL x 88.4 = umol/L). Outside ``impossible`` a value is an error; outside
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

    ``start``: "first_dose" (day 1 = the first record of the dosing file, ``dosing.csv``) or
    "randomization" (day 1 = the randomization date; the dosing file is then optional).
    """
    start: str = "first_dose"
    noun: str = "dose"
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
class ClinicalAssessment:
    """A column of the clinical-assessment file (clinical.csv): a graded finding (``levels``, best first) or, with
    no levels, a Y/N flag. ``unknown``: the finding may be recorded as "present, grade unknown" (a score that
    needs the grade is then not derivable)."""
    column: str
    label: str
    levels: tuple[str, ...] = ()
    unknown: bool = False

    @property
    def is_flag(self) -> bool:
        return not self.levels

    @property
    def allowed(self) -> tuple[str, ...]:
        """The values the export may hold (Y/N for a flag), "present, grade unknown" last when accepted."""
        if self.is_flag:
            return ("Y", "N")
        return self.levels + ((scores.GRADE_UNKNOWN,) if self.unknown else ())


COVARIATE_SOURCES = ("adsl", "screening.<column>", "clinical.<column>", "derived", "class.<PARAMCD>")


@dataclass(frozen=True)
class Covariate:
    """A row of Table 1: an ADSL variable (``code``), its label and unit, continuous or categorical.

    ``source``: where ADSL takes it from: "adsl" (a standard ADSL variable, e.g. AGE, SEX), "screening.<column>"
    (the screening log's column), "clinical.<column>" (the baseline clinical assessment's column), "derived" (the
    baseline value of the derived parameter ``code``) or "class.<PARAMCD>" (the class of that derived parameter at
    baseline). ``levels``: a categorical row's levels in display order (empty: the export schema's or the class's
    levels, else those observed)."""
    code: str
    label: str
    type: str = "continuous"
    unit: str = ""
    source: str = "adsl"
    levels: tuple[str, ...] = ()

    @property
    def origin(self) -> tuple[str, str]:
        """(kind, name): ("adsl", code), ("screening", column), ("clinical", column), ("derived", code) or
        ("class", PARAMCD)."""
        kind, _, name = self.source.partition(".")
        return kind, name or self.code


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
    derived_parameters: tuple[str, ...] = ()
    clinical_assessments: tuple[ClinicalAssessment, ...] = ()
    eligibility: tuple[Criterion, ...] = ()
    age_range: tuple[int, int] | None = None
    treatment: Treatment = Treatment()
    cutoff: dt.date | None = None
    alpha: float = 0.05
    primary_test: str = "fisher"
    background: str = ""
    procedure_terms: tuple[str, ...] = ()
    adverse_events_collected: bool = True
    glossary: Path | None = None
    export_mapping: Path | None = None
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
    def horizon_visit(self) -> Visit | None:
        """The visit that assesses the status at the horizon: the one whose window holds the horizon day (the
        earliest-opening one if several do); None when no window holds it."""
        holding = [v for v in self.visits if v.holds(self.horizon_days)]
        return min(holding, key=lambda v: v.window[0]) if holding else None

    @property
    def horizon_assessed_from(self) -> int:
        """The first day of follow-up on which a completer's last contact assesses the status at the horizon: the
        window start of the horizon visit, else the horizon itself."""
        v = self.horizon_visit
        return v.window[0] if v else self.horizon_days

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
        """Whether the export must carry the dosing file: only when day 1 is the first dose (``treatment.start``)."""
        return self.treatment.start == "first_dose"

    def doses_recorded(self, dose_records: int) -> bool:
        """Whether what each participant received is recorded: the trial has a dosing file, or the export carries
        dose records although the trial needs none. Otherwise everyone is taken to have started the allocated
        treatment on the day of randomization, and the book says so."""
        return self.has_dosing_file or dose_records > 0

    def day_one(self, first_dose, randomized):
        """Study day 1 per participant (pandas Series, aligned): the first dose (ADSL TRTSDT), else, before any
        dose or when the trial's day 1 is randomization (``treatment.start``), the randomization date (RANDDT)."""
        return first_dose.fillna(randomized) if self.has_dosing_file else randomized

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
    def sensitivity_endpoint(self) -> str | None:
        """The endpoint whose missing data the sensitivity chapter examines at the last visit: a continuous primary
        endpoint tested there (the primary estimand), else the key secondary endpoint."""
        v = self.primary_visit
        if v is not None and v.code == self.last_visit.code:
            return self.primary_endpoint.code
        return self.key_secondary

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

    def with_mapping(self, mapping: str | os.PathLike | None) -> "Trial":
        """The same trial read through another export mapping (a build parameter overrides the trial file's
        ``export_mapping``; "none": the export is in the contract's shape)."""
        return replace(self, export_mapping=paths.mapping_file(self.source, None, mapping)) if mapping else self

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
        """The derived parameters ADLB holds: those the trial file lists (``derived_parameters``), then any other
        that an endpoint (``source: derived``) or a baseline covariate (``derived``, ``class.<PARAMCD>``) names."""
        named = list(self.derived_parameters) + [e.code for e in self.endpoints if e.source == "derived"]
        named += [c.origin[1] for c in self.baseline_covariates if c.origin[0] in ("derived", "class")]
        return list(dict.fromkeys(named))

    def clinical_assessment(self, column: str) -> ClinicalAssessment | None:
        """The clinical-assessment column of that name, None if the trial file declares none."""
        return next((a for a in self.clinical_assessments if a.column == column), None)

    def derived(self, code: str) -> scores.DerivedParameter:
        """The registry's definition of a derived parameter of this trial."""
        return scores.get(code)

    @property
    def classed_scores(self) -> list[scores.DerivedParameter]:
        """The derived parameters of this trial that have classes (e.g. a points score and its grades)."""
        return [p for p in map(scores.get, self.derived_scores) if p.classes is not None]

    def component_factors(self, code: str) -> dict[str, float]:
        """Each laboratory component of derived parameter ``code`` -> the factor from the panel unit to the unit
        the parameter needs; raises ValueError naming what the lab panel lacks."""
        p = scores.get(code)
        out, lacks = {}, []
        for c in p.components:
            factor = scores.conversion(c, self.lab(c.code)) if c.code in self.lab_codes else None
            if factor is None:
                lacks.append(f"{c.code} in {c.unit}" if c.code in self.lab_codes else c.code)
            out[c.code] = factor
        if lacks:
            raise ValueError(f"{code} cannot be derived from the lab_panel: it lacks {', '.join(lacks)} "
                             f"(needs {p.needs()})")
        return out

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


def _get(spec: dict, key: str, default):
    """An optional key's value; its default when the key is absent or left empty (null)."""
    value = spec.get(key)
    return default if value is None else value


def _range(value, default) -> tuple[float, float]:
    if value is None:
        return default
    lo, hi = value
    return (float("-inf") if lo is None else float(lo), float("inf") if hi is None else float(hi))


def _lab_panel(raw: dict) -> tuple[LabTest, ...]:
    return tuple(LabTest(code=str(t["code"]), label=str(t["label"]), unit=str(t["unit"]),
                         units=tuple((str(u), float(f)) for u, f in (t.get("units") or {}).items()),
                         impossible=_range(t.get("impossible"), (0.0, float("inf"))),
                         expected=_range(t.get("expected"), None) if t.get("expected") else None,
                         decimals=int(_get(t, "decimals", 1)))
                 for t in _get(raw, "lab_panel", []))


def _eligibility(raw: dict) -> tuple[tuple[Criterion, ...], tuple[int, int] | None]:
    spec = raw.get("eligibility") or {}
    out = []
    for kind in ("inclusion", "exclusion"):
        for i, c in enumerate(_get(spec, kind, []), start=2 if kind == "inclusion" and spec.get("age") else 1):
            out.append(Criterion(str(c["column"]), kind, int(_get(c, "number", i)), str(c["label"]),
                                 bool(_get(c, "consent", False))))
    age = tuple(int(a) for a in spec["age"]) if spec.get("age") else None
    return tuple(out), age


def _treatment(raw: dict) -> Treatment:
    t = raw.get("treatment") or {}
    return Treatment(start=_get(t, "start", "first_dose"), noun=str(_get(t, "noun", "dose")),
                     route=str(_get(t, "route", "")), dose_unit=str(_get(t, "dose_unit", "")),
                     dose_range=_range(t.get("dose_range"), (0.0, float("inf"))))


def _safety(raw: dict, path: Path) -> dict:
    """The ``safety`` section: ``adverse_events_collected`` (default true: the events file's AE rows are the adverse
    events) and ``procedure_terms`` (verbatim-term fragments of procedure-related events; default none)."""
    spec = raw.get("safety") or {}
    value = _get(spec, "adverse_events_collected", True)
    terms = spec.get("procedure_terms") or []
    return {"adverse_events_collected": value, "procedure_terms": tuple(str(t).lower() for t in terms)}


def _strata(value, path) -> tuple[Stratum, ...]:
    out = []
    for s in value or []:
        if isinstance(s, dict):
            out.append(Stratum(str(s["code"]), tuple(str(v) for v in s.get("levels") or ())))
        else:
            out.append(Stratum(str(s)))
    return tuple(out)


def _randomization(raw: dict, path) -> Randomization:
    spec = raw.get("randomization") or {}
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
    extra = []
    for e in spec.get("intercurrent") or []:
        extra.append(EventType(str(e["code"]), str(e["label"]), "intercurrent"))
    return STANDARD_EVENTS[:1] + tuple(extra) + STANDARD_EVENTS[1:]


def _glossary(raw: dict, path: Path) -> Path | None:
    """The trial file's ``glossary`` (MyST glossary entries of its field): beside the trial file, else among the
    project's shared glossaries (``trials/``), so a trial file copied elsewhere keeps its field's terms."""
    if not raw.get("glossary"):
        return None
    tried = [(folder / str(raw["glossary"])).resolve() for folder in (path.parent, paths.TRIALS)]
    found = next((f for f in tried if f.is_file()), None)
    if found is None:
        raise TrialFileError(f"{path}: glossary {raw['glossary']!r}: no such file (looked for {tried[0]} and "
                             f"{tried[1]})")
    return found


def _export_mapping(raw: dict, path: Path) -> Path | None:
    """The trial file's ``export_mapping`` (how the site's files become the contract's), relative to the trial file;
    it is checked when an export is read, so a trial file names it before the site's first export exists."""
    return paths.mapping_file(path, raw.get("export_mapping"))


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
        out.append(TimeToEvent(str(t["code"]), str(t.get("label") or t["code"]), tuple(map(str, t["events"])),
                               tuple(map(str, t.get("censors") or ()))))
    return tuple(out)


def _primary_endpoint(raw: dict, path) -> PrimaryEndpoint:
    spec = raw["primary_endpoint"]
    named_test = (raw.get("analysis_plan") or {}).get("primary_test")
    if spec.get("kind") == "continuous" and named_test is not None:
        raise TrialFileError(f"{path}: analysis_plan.primary_test ({named_test}) applies to a time-to-event primary "
                             "endpoint only; a continuous primary endpoint is tested by the MMRM contrast at its visit "
                             "(remove primary_test)")
    return PrimaryEndpoint(code=str(spec["code"]), label=str(spec.get("label") or spec["code"]),
                           kind=str(_get(spec, "kind", "time_to_event")),
                           horizon_days=None if spec.get("horizon_days") is None else int(spec["horizon_days"]),
                           visit=None if spec.get("visit") is None else str(spec["visit"]))


def _clinical_assessments(raw: dict, path) -> tuple[ClinicalAssessment, ...]:
    out = []
    for a in raw.get("clinical_assessments") or []:
        if not isinstance(a, dict) or not a.get("column"):
            raise TrialFileError(f"{path}: clinical_assessments: each is a mapping {{column, label, levels, unknown}}")
        out.append(ClinicalAssessment(str(a["column"]), str(a.get("label") or a["column"]),
                                      tuple(map(str, a.get("levels") or ())), bool(a.get("unknown", False))))
    return tuple(out)


def _covariates(raw: dict, path) -> tuple[Covariate, ...]:
    out = []
    for c in raw.get("baseline_covariates") or []:
        out.append(Covariate(str(c["code"]), str(_get(c, "label", c["code"])), str(_get(c, "type", "continuous")),
                             str(c.get("unit") or ""), str(c.get("source") or "adsl"),
                             tuple(map(str, c.get("levels") or ()))))
    return tuple(out)


def _known_keys(spec: dict, known, where: str, path) -> None:
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise TrialFileError(f"{path}: {where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")


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


def _model_number(spec: dict, key: str, where: str, path, default=None) -> float:
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
    low, high = (_model_number(spec, k, where, path, d) for k, d in (("low", float("-inf")), ("high", float("inf"))))
    if spec.get("from") is not None:
        return LabModel(code, log=False, within_sd=_model_number(spec, "within_sd", where, path, 0.0), low=low, high=high,
                        source=str(spec["from"]), factor=_model_number(spec, "factor", where, path, 1.0),
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
    median = _model_number(spec, "median", where, path)
    log = bool(spec.get("log", True))
    if log and median <= 0:
        raise TrialFileError(f"{path}: {where}.median must be positive on the log scale, got {median}")
    return LabModel(code, log=log, median=median, severity=_model_number(spec, "severity", where, path, 0.0),
                    between_sd=_model_number(spec, "between_sd", where, path), within_sd=_model_number(spec, "within_sd", where, path),
                    trend=_model_number(spec, "trend", where, path, 0.0), low=low, high=high, correlated=correlated,
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
        grades.append(Grade(str(column), *(_model_number(g, k, w, path) for k in ("severity", "between_sd", "within_sd")),
                            cuts, levels))
    flags = []
    for column, f in (spec.get("flags") or {}).items():
        w = f"{where}.flags.{column}"
        _known_keys(f or {}, ("lab", "above", "probability", "otherwise"), w, path)
        if not f.get("lab"):
            raise TrialFileError(f"{path}: {w}.lab must name a lab test")
        flags.append(ClinicalFlag(str(column), str(f["lab"]), _model_number(f, "above", w, path),
                                  _model_number(f, "probability", w, path), _model_number(f, "otherwise", w, path, 0.0)))
    return ClinicalModel(str(spec["follows"]), tuple(grades), tuple(flags))


def _event_models(spec, path) -> tuple[EventModel, ...]:
    out = []
    for code, e in (spec or {}).items():
        where = f"simulation.event_rates.{code}"
        if isinstance(e, dict):
            _known_keys(e, ("rate", "severity", "term"), where, path)
            rate, severity, term = _model_number(e, "rate", where, path), _model_number(e, "severity", where, path, 1.0), e.get("term")
        else:
            rate, severity, term = _model_number({"rate": e}, "rate", where, path), 1.0, None
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
        terms.append((str(term), _model_number(t, "weight", w, path), _model_number(t, "serious", w, path, 0.0)))
    return AdverseEventModel(
        after_dose_rate=_model_number(after, "rate", f"{where}.after_dose", path, 0.0),
        after_dose=_weights(after["terms"], f"{where}.after_dose.terms", path) if after.get("terms") else (),
        by_arm=tuple((str(arm), _weights(t, f"{where}.by_arm.{arm}", path))
                     for arm, t in (spec.get("by_arm") or {}).items()),
        per_24_weeks=_model_number(during, "per_24_weeks", f"{where}.during_follow_up", path, 0.0), during_follow_up=tuple(terms))



# The simulation section's disease model (beyond the assumptions of SIMULATION_DEFAULTS), each read by its parser.
SIMULATION_MODEL_KEYS = ("baseline", "labs", "clinical", "event_rates", "death_causes", "adverse_events",
                         "screen_failures", "unscheduled_reasons", "age", "female", "dose")
_MODEL_FORMS = {
    "baseline": "a mapping of screening-log column to {level: relative frequency}",
    "labs": "a mapping of lab code to its model {log, median, severity, between_sd, within_sd, trend, low, high}",
    "clinical": "a mapping {follows: <lab code>, grades: {<column>: {...}}, flags: {<column>: {...}}}",
    "event_rates": "a mapping of intercurrent event code to a probability by the horizon, or {rate, severity, term}",
    "death_causes": "a mapping of cause to relative frequency",
    "adverse_events": "a mapping {after_dose: {rate, terms}, by_arm: {<arm>: {term: probability}}, "
                      "during_follow_up: {per_24_weeks, terms: {<term>: {weight, serious}}}}",
    "screen_failures": "a mapping of eligibility column to relative frequency",
    "unscheduled_reasons": "a list of text",
    "age": "a mapping {mean, sd} in years",
    "female": "a proportion from 0 to 1",
    "dose": "a number (the typical dose in the dose unit)",
}


def _simulation_models(spec: dict, path) -> dict:
    """The disease model of the simulation section, typed; a value of the wrong shape is a TrialFileError naming its
    key (the parsers name the inner key when they can)."""
    parsers = {
        "baseline": lambda v: ("baseline", tuple((str(col), _weights(levels, f"simulation.baseline.{col}", path))
                                                 for col, levels in v.items())),
        "labs": lambda v: ("labs", tuple(_lab_model(str(code), m, path) for code, m in v.items())),
        "clinical": lambda v: ("clinical", _clinical_model(v, path)),
        "event_rates": lambda v: ("events", _event_models(v, path)),
        "death_causes": lambda v: ("death_causes", _weights(v, "simulation.death_causes", path)),
        "adverse_events": lambda v: ("adverse_events", _adverse_event_model(v, path)),
        "screen_failures": lambda v: ("screen_failures", _weights(v, "simulation.screen_failures", path)),
        "unscheduled_reasons": lambda v: ("unscheduled_reasons", tuple(str(r) for r in v)),
        "age": lambda v: ("age", (_model_number(v, "mean", "simulation.age", path),
                                  _model_number(v, "sd", "simulation.age", path))),
        "female": lambda v: ("female", _model_number({"female": v}, "female", "simulation", path)),
        "dose": lambda v: ("dose", _model_number({"dose": v}, "dose", "simulation", path)),
    }
    models = {}
    for key in SIMULATION_MODEL_KEYS:
        value = spec.get(key)
        if value is None or value == {} or value == []:
            continue
        try:
            field_name, parsed = parsers[key](value)
        except TrialFileError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError):
            raise TrialFileError(f"{path}: simulation.{key} must be {_MODEL_FORMS[key]}, got {value!r}") from None
        models[field_name] = parsed
    return models


def _simulation(raw: dict, path) -> Simulation:
    spec = raw.get("simulation") or {}
    stated = {k: spec[k] for k in SIMULATION_DEFAULTS if spec.get(k) is not None}
    if "accrual_start" in stated:
        stated["accrual_start"] = _date(stated["accrual_start"], path, "simulation.accrual_start")
    effects = tuple((str(arm), tuple((str(c), float(v)) for c, v in (e or {}).items()))
                    for arm, e in (spec.get("effects") or {}).items())
    doses = tuple((str(arm), int(n)) for arm, n in (spec.get("doses_per_arm") or {}).items())
    return Simulation(**stated, effects=effects, doses_per_arm=doses, stated=frozenset(stated),
                      **_simulation_models(spec, path))


PRIMARY_TESTS = ("fisher", "logrank", "cox")


# --- the trial file's schema: every key, its type, whether it is required --------------------------------------
# A section is a dict of key -> (type, required); a list of items is [item]; a type is a _Kind. ``_problems`` walks
# a trial file against it and names each wrong key by its path (e.g. "visits[2].window"), so that no KeyError or
# TypeError reaches the reader. Semantic rules across keys (a control arm that is an arm, ...) are in ``_check``.

@dataclass(frozen=True)
class _Kind:
    what: str
    ok: object  # value -> bool


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text(v) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


def _is_date(v) -> bool:
    if isinstance(v, dt.date):
        return True
    try:
        dt.date.fromisoformat(str(v))
        return True
    except ValueError:
        return False


def _pair(v, item) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(item(x) for x in v) \
        and (None in v or v[0] <= v[1])


def _one_of(*options) -> _Kind:
    return _Kind("one of " + ", ".join(repr(o) for o in options), lambda v: v in options)


def _mapping_of(what, key, value) -> _Kind:
    return _Kind(what, lambda v: isinstance(v, dict) and all(key(k) and value(x) for k, x in v.items()))


TEXT = _Kind("text", _text)
MAPPING = _Kind("a mapping", lambda v: isinstance(v, dict))
WHOLE = _Kind("a whole number", _whole)
COUNT = _Kind("a whole number of at least 1", lambda v: _whole(v) and v >= 1)
NUMBER = _Kind("a number", _number)
FLAG = _Kind("true or false", lambda v: isinstance(v, bool))
DATE = _Kind("a date (YYYY-MM-DD)", _is_date)
RATE = _Kind("a proportion from 0 to 1", lambda v: _number(v) and 0 <= v <= 1)
LEVEL = _Kind("a number strictly between 0 and 1", lambda v: _number(v) and 0 < v < 1)
WINDOW = _Kind("a pair [first day, last day] of whole numbers, first <= last", lambda v: _pair(v, _whole))
RANGE = _Kind("a pair [low, high] of numbers, low <= high (null: unbounded)",
              lambda v: _pair(v, lambda x: x is None or _number(x)))
TEXTS = _Kind("a list of text", lambda v: isinstance(v, list) and all(_text(x) for x in v))
COUNTS = _Kind("a list of whole numbers of at least 1", lambda v: isinstance(v, list) and all(COUNT.ok(x) for x in v))
FACTORS = _mapping_of("a mapping of unit to conversion factor, e.g. {mg/dL: 17.1}", _text, lambda f: _number(f) and f > 0)
PER_ARM = _mapping_of("a mapping of arm code to a whole number", _text, lambda n: _whole(n) and n >= 0)
EFFECTS = _mapping_of("a mapping of arm code to {endpoint code: effect}", _text,
                      lambda e: e is None or (isinstance(e, dict) and all(_text(k) and _number(x) for k, x in e.items())))
STRATA = _Kind("a list of factors, each a code or {code, levels}",
               lambda v: isinstance(v, list) and all(_text(s) or (isinstance(s, dict) and "code" in s
                                                                    and set(s) <= {"code", "levels"}
                                                                    and TEXTS.ok(s.get("levels") or [])) for s in v))


def _req(kind):
    return (kind, True)


def _opt(kind):
    return (kind, False)


_CRITERION = {"column": _req(TEXT), "label": _req(TEXT), "number": _opt(WHOLE), "consent": _opt(FLAG)}

TRIAL_FILE_SCHEMA = {
    "id": _req(TEXT), "title": _req(TEXT), "short_title": _opt(TEXT), "site": _opt(TEXT), "background": _opt(TEXT),
    "population": _opt(TEXT), "design": _opt(TEXT),
    "planned_n": _req(COUNT), "accrual_months": _req(COUNT), "followup_weeks": _opt(COUNT),
    "arms": _req([{"code": _req(TEXT), "label": _req(TEXT), "description": _opt(TEXT), "ratio": _opt(COUNT)}]),
    "control_arm": _req(TEXT),
    "randomization": _req({"method": _opt(TEXT), "block_sizes": _opt(COUNTS), "seed": _opt(WHOLE),
                           "accrual_start": _opt(DATE), "strata": _opt(STRATA), "list_file": _opt(TEXT)}),
    "visits": _req([{"code": _req(TEXT), "label": _req(TEXT), "week": _req(WHOLE), "day": _req(WHOLE),
                     "window": _req(WINDOW)}]),
    "lab_panel": _opt([{"code": _req(TEXT), "label": _req(TEXT), "unit": _req(TEXT), "units": _opt(FACTORS),
                        "impossible": _opt(RANGE), "expected": _opt(RANGE),
                        "decimals": _opt(_Kind("a whole number from 0", lambda v: _whole(v) and v >= 0))}]),
    "endpoints": _req([{"code": _req(TEXT), "label": _req(TEXT), "unit": _opt(TEXT), "log": _opt(FLAG),
                        "better": _opt(_one_of("lower", "higher")), "source": _opt(TEXT)}]),
    "analysis_plan": _opt({"alpha": _opt(LEVEL), "primary_test": _opt(_one_of(*PRIMARY_TESTS))}),
    "key_secondary": _opt(TEXT),
    "events": _opt({"intercurrent": _opt([{"code": _req(TEXT), "label": _req(TEXT)}])}),
    "time_to_event": _opt([{"code": _req(TEXT), "label": _opt(TEXT), "events": _req(TEXTS), "censors": _opt(TEXTS)}]),
    "primary_endpoint": _req({"code": _req(TEXT), "label": _opt(TEXT),
                              "kind": _opt(_one_of(*PRIMARY_KINDS)), "horizon_days": _opt(COUNT),
                              "visit": _opt(TEXT)}),
    "baseline_covariates": _opt([{"code": _req(TEXT), "label": _opt(TEXT),
                                  "type": _opt(_one_of("continuous", "categorical")), "unit": _opt(TEXT),
                                  "source": _opt(TEXT), "levels": _opt(TEXTS)}]),
    "derived_parameters": _opt(TEXTS),
    "clinical_assessments": _opt([{"column": _req(TEXT), "label": _opt(TEXT), "levels": _opt(TEXTS),
                                   "unknown": _opt(FLAG)}]),
    "eligibility": _opt({"age": _opt(_Kind("a pair [youngest, oldest] of whole numbers of years",
                                           lambda v: _pair(v, _whole))),
                         "inclusion": _opt([_CRITERION]), "exclusion": _opt([_CRITERION])}),
    "treatment": _opt({"start": _opt(_one_of("first_dose", "randomization")), "noun": _opt(TEXT), "route": _opt(TEXT),
                       "dose_unit": _opt(TEXT), "dose_range": _opt(RANGE)}),
    "safety": _opt({"adverse_events_collected": _opt(FLAG), "procedure_terms": _opt(TEXTS)}),
    "cutoff": _opt(DATE), "glossary": _opt(TEXT), "export_mapping": _opt(TEXT),
    "simulation": _opt({"seed": _opt(WHOLE), "accrual_start": _opt(DATE),
                        "screened_per_randomized": _opt(_Kind("a number of at least 1", lambda v: _number(v) and v >= 1)),
                        "death_rate_24w": _opt(RATE), "withdrawal_rate": _opt(RATE), "missed_visit_rate": _opt(RATE),
                        "effects": _opt(EFFECTS), "doses_per_arm": _opt(PER_ARM),
                        # the disease model; each is checked key by key where it is read (_simulation)
                        **{k: _opt(MAPPING) for k in SIMULATION_MODEL_KEYS[:7]},
                        "unscheduled_reasons": _opt(TEXTS), "age": _opt({"mean": _req(NUMBER), "sd": _req(NUMBER)}),
                        "female": _opt(RATE), "dose": _opt(NUMBER)}),
}


def _problems(value, spec, where: str) -> list[str]:
    """What is wrong with ``value`` against ``spec`` (a section, a list of items, or a _Kind), each problem named by
    its key path."""
    if isinstance(spec, _Kind):
        return [] if spec.ok(value) else [f"{where} must be {spec.what}, got {value!r}"]
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{where} must be a list, got {value!r}"]
        return [p for i, item in enumerate(value) for p in _problems(item, spec[0], f"{where}[{i}]")]
    if not isinstance(value, dict):
        return [f"{where} must be a mapping of {', '.join(spec)}, got {value!r}"]
    out = []
    unknown = [str(k) for k in value if k not in spec]
    if unknown:
        out.append(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(spec)})")
    for key, (kind, required) in spec.items():
        if value.get(key) is None:
            if required:
                out.append(f"{where}.{key} is missing")
        else:
            out.extend(_problems(value[key], kind, f"{where}.{key}"))
    return out


def schema_problems(raw) -> list[str]:
    """Every problem of a trial file's keys and types (empty when it fits ``TRIAL_FILE_SCHEMA``): missing required
    keys first, then unknown top-level keys, then each section's."""
    if not isinstance(raw, dict):
        return [f"the trial file must be a mapping of keys ({', '.join(TRIAL_FILE_SCHEMA)}), got {raw!r}"]
    out = []
    missing = [k for k, (_, required) in TRIAL_FILE_SCHEMA.items() if required and raw.get(k) is None]
    if missing:
        out.append(f"missing field(s) {', '.join(missing)}")
    unknown = [str(k) for k in raw if k not in TRIAL_FILE_SCHEMA]
    if unknown:
        out.append(f"unknown top-level key(s) {', '.join(unknown)} (known: {', '.join(TRIAL_FILE_SCHEMA)})")
    for key, (kind, _) in TRIAL_FILE_SCHEMA.items():
        if raw.get(key) is not None:
            out.extend(_problems(raw[key], kind, key))
    return out


def load_trial(trial: str | os.PathLike = paths.DEFAULT_TRIAL) -> Trial:
    """Read and check a trial file given by id (looked up in trials/) or by path."""
    path = paths.trial_file(trial)
    if not path.exists():
        raise TrialFileError(f"{path}: trial file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise TrialFileError(f"{path}: not valid YAML: {e}") from None
    return trial_from_mapping(raw, path)


def trial_from_mapping(raw, path: Path) -> Trial:
    """The typed plan from a parsed trial file (``path`` names it in errors): checked against the schema first, so
    that a wrong key is a TrialFileError naming it, then against the rules across keys (``_check``)."""
    problems = schema_problems(raw)
    if problems:
        raise TrialFileError(f"{path}: " + "; ".join(problems))
    arms = tuple(Arm(str(a["code"]), str(a["label"]), str(_get(a, "description", a["label"])), int(_get(a, "ratio", 1)))
                 for a in raw["arms"])
    visits = tuple(Visit(str(v["code"]), str(v["label"]), int(v["week"]), int(v["day"]), tuple(v["window"]))
                   for v in raw["visits"])
    criteria, age_range = _eligibility(raw)
    endpoints = tuple(Endpoint(str(e["code"]), str(e["label"]), str(_get(e, "unit", "")), bool(_get(e, "log", False)),
                               _get(e, "better", "lower"), str(_get(e, "source", "lab")))
                      for e in raw["endpoints"])
    plan = _get(raw, "analysis_plan", {})
    trial = Trial(
        id=str(raw["id"]), title=str(raw["title"]), short_title=str(_get(raw, "short_title", raw["title"])),
        site=str(_get(raw, "site", "")), population=str(_get(raw, "population", "")),
        design=str(_get(raw, "design", "")),
        planned_n=int(raw["planned_n"]), accrual_months=int(raw["accrual_months"]),
        followup_weeks=int(_get(raw, "followup_weeks", max(v.week for v in visits))),
        arms=arms, control_arm=str(raw["control_arm"]), randomization=_randomization(raw, path),
        visits=visits, endpoints=endpoints, primary_endpoint=_primary_endpoint(raw, path),
        baseline_covariates=_covariates(raw, path),
        key_secondary=None if raw.get("key_secondary") is None else str(raw["key_secondary"]),
        simulation=_simulation(raw, path), source=path,
        lab_panel=_lab_panel(raw), derived_parameters=tuple(map(str, raw.get("derived_parameters") or ())),
        clinical_assessments=_clinical_assessments(raw, path),
        eligibility=criteria, age_range=age_range, treatment=_treatment(raw),
        cutoff=_date(raw["cutoff"], path, "cutoff") if raw.get("cutoff") else None,
        alpha=float(_get(plan, "alpha", 0.05)),
        primary_test=_get(plan, "primary_test", "fisher"),
        background=" ".join(str(_get(raw, "background", "")).split()),
        events=_events(raw, path), time_to_event=_time_to_event(raw, path), glossary=_glossary(raw, path),
        export_mapping=_export_mapping(raw, path),
        **_safety(raw, path))
    _check(trial, path)
    return trial


def _derived_problems(trial: Trial) -> list[str]:
    """Derived parameters that are not registered or that the lab panel cannot give; covariate sources."""
    problems = []
    for code in trial.derived_scores:
        if code not in scores.REGISTRY:
            problems.append(f"derived parameter {code}: not in the registry (helpers.scores: "
                            f"{', '.join(sorted(scores.REGISTRY))})")
            continue
        try:
            trial.component_factors(code)
        except ValueError as err:
            problems.append(f"derived parameter {err}")
        for g in trial.derived(code).grades:
            a = trial.clinical_assessment(g.column)
            if a is None:
                problems.append(f"derived parameter {code}: needs the clinical assessment {g.column!r} "
                                f"(clinical_assessments)")
            elif tuple(x.lower() for x in a.levels) != tuple(x.lower() for x in g.levels):
                problems.append(f"clinical_assessments ({g.column}): levels {list(a.levels)} are not those {code} "
                                f"scores {list(g.levels) or 'a Y/N flag'}")
    for c in trial.baseline_covariates:
        kind, name = c.origin
        where = f"baseline_covariates ({c.code}): source {c.source!r}"
        if kind not in ("adsl", "screening", "clinical", "derived", "class") or (kind == "derived" and name != c.code):
            problems.append(f"{where} must be one of {', '.join(COVARIATE_SOURCES)}")
        elif kind == "class" and name in scores.REGISTRY and scores.get(name).classes is None:
            problems.append(f"{where}: {name} has no classes")
        elif kind == "clinical" and trial.clinical_assessment(name) is None:
            problems.append(f"{where}: no clinical_assessments column {name!r}")
        if c.type not in ("continuous", "categorical"):
            problems.append(f"baseline_covariates ({c.code}): type must be continuous or categorical, got {c.type!r}")
        if c.levels and c.type != "categorical":
            problems.append(f"baseline_covariates ({c.code}): levels are for a categorical covariate")
    return problems


def _check(trial: Trial, path: Path) -> None:
    problems = []
    if trial.control_arm not in trial.arm_codes:
        problems.append(f"control_arm {trial.control_arm!r} is not one of the arms {trial.arm_codes}")
    if sum(v.is_baseline for v in trial.visits) != 1:
        problems.append("exactly one visit must have week 0 (baseline)")
    for v in trial.visits:
        if not v.holds(v.day):
            problems.append(f"visit {v.code}: target day {v.day} outside its window {list(v.window)}")
    block_unit = sum(a.ratio for a in trial.arms)
    for b in trial.randomization.stated_block_sizes:
        if b % block_unit:
            problems.append(f"block size {b} is not a multiple of the allocation ratio total {block_unit}")
    if trial.key_secondary is not None and trial.key_secondary not in [e.code for e in trial.endpoints]:
        problems.append(f"key_secondary {trial.key_secondary!r} is not one of the endpoints")
    for e in trial.endpoints:
        if e.source == "lab" and e.code not in trial.lab_codes:
            problems.append(f"endpoint {e.code}: not a test of the lab_panel {trial.lab_codes}")
    problems += _derived_problems(trial)
    for t in trial.lab_panel:
        lo, hi = t.impossible
        if t.expected and not (lo <= t.expected[0] <= t.expected[1] <= hi):
            problems.append(f"lab {t.code}: expected range {list(t.expected)} must lie inside the impossible limits")
    pe = trial.primary_endpoint
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
    problems += _simulation_problems(trial)
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
