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
    randomization: dict
    visits: tuple[Visit, ...]
    endpoints: tuple[Endpoint, ...]
    primary_endpoint: dict
    baseline_covariates: tuple[dict, ...]
    key_secondary: str | None = None
    simulation: dict = field(default_factory=dict)
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
        return int(self.primary_endpoint.get("horizon_days", 7 * self.followup_weeks))

    @property
    def censors_transplant(self) -> bool:
        """True when liver transplantation censors overall survival (the trial file's default), False when it
        is an event with death."""
        return self.primary_endpoint.get("transplant", "censor") == "censor"

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
        digest = hashlib.sha256(str(key or self.randomization.get("seed")).encode()).digest()
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
                       simulation={k: v for k, v in self.simulation.items() if k != "effects"}, masked_from=self,
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
        arms=arms, control_arm=raw["control_arm"], randomization=raw["randomization"],
        visits=visits, endpoints=endpoints, primary_endpoint=raw["primary_endpoint"],
        baseline_covariates=tuple(raw.get("baseline_covariates", [])),
        key_secondary=raw.get("key_secondary"),
        simulation=raw.get("simulation", {}), source=path,
        lab_panel=_lab_panel(raw), eligibility=criteria, age_range=age_range, treatment=_treatment(raw),
        cutoff=_date(raw["cutoff"], path, "cutoff") if raw.get("cutoff") else None,
        alpha=float(raw.get("analysis_plan", {}).get("alpha", 0.05)),
        primary_test=raw.get("analysis_plan", {}).get("primary_test", "fisher"),
        background=" ".join(str(raw.get("background", "")).split()),
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
    for b in trial.randomization.get("block_sizes", []):
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
    if trial.primary_test not in PRIMARY_TESTS:
        problems.append(f"analysis_plan.primary_test must be one of {list(PRIMARY_TESTS)}")
    if not 0 < trial.alpha < 1:
        problems.append("analysis_plan.alpha must lie between 0 and 1")
    if problems:
        raise TrialFileError(f"{path}: " + "; ".join(problems))
