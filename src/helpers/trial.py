"""The trial described as data: read a YAML trial file into a small, typed object."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import paths


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


@dataclass(frozen=True)
class Endpoint:
    code: str
    label: str
    unit: str
    log: bool
    better: str
    source: str

    @property
    def display(self) -> str:
        """Label with unit, as a table row or axis title reads it."""
        return self.label if self.unit in ("1", "") else f"{self.label} ({self.unit})"


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


_REQUIRED = ("id", "title", "planned_n", "accrual_months", "arms", "control_arm", "randomization",
             "visits", "endpoints", "primary_endpoint")


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
        simulation=raw.get("simulation", {}), source=path)
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
    if problems:
        raise TrialFileError(f"{path}: " + "; ".join(problems))
