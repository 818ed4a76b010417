"""A synthetic site export for a trial: the files of export_schema.yaml, as the site would send them.

The cohort is driven by the trial file (arms, ratios, block sizes, visits and windows, planned n,
accrual, intercurrent events) and its ``simulation`` block: seed, screening ratio, death, withdrawal and
missed-visit rates, treatment effects, and the disease as the cohort models it, so the code knows no disease:

* ``labs``: one model per lab test (``trial.LabModel``; tests outside the panel may be drawn for others to
  follow); a panel test without one gets the book's generic model from its expected range
  (``trial.defaulted_lab_model``; ``assumed_lab_models`` lists them, and the book says it assumed them);
* ``baseline``: the screening log's categorical columns and their frequencies (e.g. the cause of disease);
* ``clinical``: the clinical file's grades and flags (no clinical file without it);
* ``event_rates``: each intercurrent event's probability by the horizon (else ``DEFAULT_EVENT_RATE``, said to be
  assumed), its severity loading and the term written; ``death_causes``; ``adverse_events`` after each dose,
  by arm and over follow-up; ``screen_failures``, ``unscheduled_reasons``, age, sex and the typical dose.
  Doses per participant are ``simulation.doses_per_arm`` (else 1), 4 weeks apart.

Everything is drawn from one ``numpy`` generator and one seeded ``Faker("zh_CN")``, so a seed gives the same
files byte for byte. Rules fixed here rather than in the trial file:

* one latent severity per participant drives the baseline labs, the clinical grades, the AE rate and the
  hazards of death and of each intercurrent event;
* treatment effects act on the arm actually received and ramp in linearly (full at the last
  follow-up week); lab values follow a random intercept plus a serially correlated residual;
* the files follow the trial file: one labs column per test of its ``lab_panel`` (rounded to the test's
  decimals), one screening flag per ``eligibility`` criterion, event types from its intercurrent events, and no
  dosing file when ``treatment.start`` is ``randomization`` (study day 1 is then the randomization date).

``realistic=True`` (the default) then adds, from a second generator seeded from the seed (so the
clean part is unchanged), the quirks real exports contain and the loader accepts:

* about 2.5% of lab cells missing, never a whole row: mostly empty, some ``ND``, a few ``HEMOLYZED``;
* one or two clinical grades written ``ND``;
* the lowest result of each test whose model says ``below_limit`` reported below a limit, e.g. ``<10``;
* one or two ``UNSCHEDULED`` lab samples between scheduled visits, outside every visit window;
* one retest: a second sample of a scheduled visit 1-2 days later, inside the window;
* a column the contract does not name, ``lab_comment`` (mostly empty), after the labs columns;
* the optional ``age`` column in the screening log, given on about one row in ten (equal to the
  age derived from the birth date), empty elsewhere.

A data cut-off (``cutoff``, default the trial file's) truncates the simulated cohort to what the
site would have sent on that date: nobody screened or randomized after it, no record dated after
it, AE end dates after it left empty (so follow-up still running has no end event).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from faker import Faker
from faker.providers.ssn.zh_CN import Provider as _ZhSsn

from helpers.data.randomization import allocation_list, has_allocation_list
from helpers.data.schema import FileSpec, export_spec
from helpers.trial import (
    DEFAULT_EVENT_RATE,
    SIMULATION_DEFAULTS,
    EventModel,
    LabModel,
    Trial,
    defaulted_lab_model,
)

SITE_NUMBER = 1

# Relative frequency of screen-failure reasons: age above the range (below it 1), an inclusion criterion not met,
# consent declined, an exclusion criterion (1 unless the trial file's simulation.screen_failures names its column).
_AGE_HIGH, _AGE_LOW = ">age", "<age"
_FAILURE_WEIGHTS = {_AGE_LOW: 1.0, _AGE_HIGH: 1.5, "inclusion": 4.0, "consent": 3.0, "exclusion": 1.0}
_PREGNANT = "pregnant_or_breastfeeding"

_RESIDUAL_WEEKS = 12.0  # correlation of residuals decays as exp(-|weeks apart| / 12)
DEATH_SEVERITY = 0.8  # log hazard of death per SD of latent severity
AE_SEVERITY = 0.35  # log rate of adverse events during follow-up per SD of latent severity
VISIT_JITTER_SD = 2.5  # days around a follow-up visit's target day
MAX_DELAY_DAYS = 3  # study day 1 (first dose) 0-3 days after randomization
SWITCH_PROBABILITY = 0.5  # probability that one participant of the cohort receives another arm than allocated
CELL_MISSING_RATE = 0.025  # lab cells missing in the realistic export
_WITHDRAWAL_TERMS = {"withdrew consent": 0.5, "lost to follow-up": 0.3, "physician decision": 0.2}


@lru_cache(maxsize=1)
def _faker() -> Faker:
    """One zh_CN Faker per process (building it is slow); every use reseeds it first."""
    return Faker("zh_CN")


def choose(rng: np.random.Generator, weights: dict[str, float], size=None):
    """Keys of ``weights`` drawn with probability proportional to the values (one key, or a list of ``size``)."""
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    idx = rng.choice(len(keys), size=size, p=p / p.sum())
    return keys[idx] if size is None else [keys[i] for i in idx]


# ------------------------------------------------------------------ the trial file's disease model, with defaults

def lab_models(trial: Trial) -> dict[str, LabModel]:
    """Every simulated lab test's model, keyed by code, in drawing order: the trial file's ``simulation.labs`` (tests
    outside the panel included: they are drawn, others may follow them, but not exported), then the book's generic
    model (``trial.defaulted_lab_model``, from the panel's expected range) for each panel test the trial file gives
    no model for. ValueError names a panel test with neither a model nor a finite range."""
    out = {m.code: m for m in trial.simulation.labs}
    for t in trial.lab_panel:
        if t.code not in out:
            model = defaulted_lab_model(t)
            if model is None:
                raise ValueError(f"{trial.id}: lab test {t.code} of the lab_panel has no simulation model "
                                 f"(simulation.labs.{t.code}) and no finite expected range to assume one from")
            out[t.code] = model
    return out


def assumed_lab_models(trial: Trial) -> list[LabModel]:
    """The panel tests whose model the book assumed (the trial file's simulation section gives none)."""
    return [m for m in lab_models(trial).values() if not m.stated]


def event_models(trial: Trial) -> list[EventModel]:
    """One model per intercurrent event of the trial, in its order: the trial file's ``simulation.event_rates``, else
    the book's default probability ``DEFAULT_EVENT_RATE`` by the horizon (``stated`` False); the term written is the
    model's, else the event's label."""
    stated = {e.code: e for e in trial.simulation.events}
    out = []
    for e in trial.intercurrent_events:
        m = stated.get(e.code) or EventModel(e.code, DEFAULT_EVENT_RATE, stated=False)
        out.append(m if m.term else dataclasses.replace(m, term=e.label))
    return out


def assumed_models(trial: Trial) -> list[str]:
    """What the cohort's disease model takes from the book's generic defaults because the trial file's simulation
    section does not state it, one phrase each (empty when it states everything the cohort needs)."""
    out = []
    labs = assumed_lab_models(trial)
    if labs:
        codes = ", ".join(m.code for m in labs)
        out.append(f"the laboratory model of {codes} (log-normal around the geometric middle of the lab panel's "
                   "expected range, or normal around its middle when the range starts at zero or below, with a "
                   "between-participant SD of a twelfth of the range's width on that scale and half that within a "
                   "participant, no trend, clipped to the range)")
    for m in event_models(trial):
        if not m.stated:
            out.append(f"the probability of the intercurrent event {trial.event_type(m.code).label} by the horizon "
                       f"({100 * m.rate:g}%)")
    return out


def baseline_categories(trial: Trial) -> dict[str, dict[str, float]]:
    """The screening log's categorical columns the cohort draws (``simulation.baseline``): column -> level -> weight."""
    return {col: dict(levels) for col, levels in trial.simulation.baseline}


def draw_baseline(trial: Trial, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """The baseline categories of ``n`` participants, column by column (the draws of ``n`` single draws)."""
    return {col: np.array(choose(rng, w, n), dtype=object) for col, w in baseline_categories(trial).items()}


def _add_months(d: dt.date, months: int) -> dt.date:
    """Same day ``months`` later (clamped to the month's end)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(d.day, last))


def _completed_years(birth: dt.date, at: dt.date) -> int:
    """Age in completed years on date ``at``."""
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def _id_number(area: str, birth: dt.date, sex: str, order: int) -> str:
    """18-digit resident identity number (GB 11643): area, birth date, order code (odd for men), check digit."""
    body = f"{area}{birth:%Y%m%d}{order // 5 % 100:02d}{order % 5 * 2 + (sex == 'M')}"
    total = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(body))
    return body + "10X98765432"[total % 11]


@lru_cache(maxsize=256)
def hazard_scale(target: float, beta: float, days: float) -> float:
    """Baseline rate so that, with rate x exp(beta z), z ~ N(0,1), P(event by ``days``) = ``target``."""
    if target <= 0:
        return 0.0
    z, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    lo, hi = -20.0, 5.0
    for _ in range(80):
        mid = (lo + hi) / 2
        p = np.sum(w * (1 - np.exp(-np.exp(mid + beta * z) * days)))
        lo, hi = (mid, hi) if p < target else (lo, mid)
    return float(np.exp((lo + hi) / 2))


def _hazard_ratio_keys(trial: Trial) -> dict[str, tuple[str, ...]]:
    """Effect keys of hazard ratios, ``<CODE>_HR`` per time-to-event endpoint, with the event types they act on."""
    return {f"{t.code}_HR": t.events for t in trial.time_to_event}


def event_codes(trial: Trial) -> list[str]:
    """The competing ends of follow-up the cohort draws, in the columns of ``event_hazards``: death, each intercurrent
    event of the trial file, withdrawal (completion is what happens without any of them)."""
    return ["DEATH"] + [m.code for m in event_models(trial)] + ["WITHDRAWAL"]


def hazard_parameters(trial: Trial) -> dict[str, tuple[float, float]]:
    """Per event type that a hazard ends follow-up with (death, each intercurrent event): (probability by the horizon
    without treatment, log hazard per SD of latent severity)."""
    return {"DEATH": (trial.simulation.death_rate_24w, DEATH_SEVERITY)} | {
        m.code: (m.rate, m.severity) for m in event_models(trial)}


def event_hazards(trial: Trial, severity: np.ndarray, hazard_ratios: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per participant (rows) the constant hazard per day of each end of follow-up (columns: ``event_codes``).

    Death is calibrated to ``death_rate_24w`` by the horizon, each intercurrent event to its rate (``event_models``),
    both rising with the latent severity (``hazard_parameters``) and multiplied by ``hazard_ratios[code]`` (per
    participant, e.g. by the arm received); withdrawal has a constant hazard (``withdrawal_rate`` by the horizon)."""
    hazard_ratios = hazard_ratios or {}
    horizon = float(trial.horizon_days)
    columns = []
    for code, (target, loading) in hazard_parameters(trial).items():
        rate = hazard_scale(target, loading, horizon) * np.exp(loading * severity)
        columns.append(rate * hazard_ratios[code] if code in hazard_ratios else rate)
    columns.append(np.full(len(severity), -np.log1p(-trial.simulation.withdrawal_rate) / horizon))
    return np.column_stack(columns)


def event_uniforms(rng: np.random.Generator, n: int, k: int, stratified: bool) -> np.ndarray:
    """Uniforms for the competing event times (``n`` x ``k``); ``stratified``: death's are spread over the n-tiles
    (one per n-tile, shuffled), so one cohort's death count stays near the assumed rate."""
    uniforms = rng.random((n, k))
    if stratified:
        uniforms[:, 0] = (rng.permutation(n) + uniforms[:, 0]) / max(n, 1)
    return uniforms


def end_of_follow_up(trial: Trial, rates: np.ndarray, uniforms: np.ndarray,
                     last_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How (``event_codes``, else COMPLETED) and on which study day (float) each participant's follow-up ends: the first
    of the competing exponential event times (day 2 at the earliest), if before the last visit's day ``last_day``."""
    with np.errstate(divide="ignore"):
        times = np.where(rates > 0, -np.log1p(-uniforms) / np.where(rates > 0, rates, 1.0), np.inf)
    n = len(rates)
    first = np.argmin(times, axis=1)
    event_day = np.maximum(np.ceil(times[np.arange(n), first]), 2)
    ended = event_day < last_day
    ends = np.where(ended, np.array(event_codes(trial), dtype=object)[first], "COMPLETED")
    return ends, np.where(ended, event_day, last_day).astype(float)


def day1_delays(trial: Trial, rng: np.random.Generator, n: int) -> np.ndarray:
    """Days from randomization to study day 1: 0 to ``MAX_DELAY_DAYS`` to the first dose, 0 when day 1 is the
    randomization (the draws are made either way)."""
    return rng.integers(0, MAX_DELAY_DAYS + 1, n) * trial.has_dosing_file


def visit_days(visit, rng: np.random.Generator, n: int) -> np.ndarray:
    """Study days of ``n`` participants' samples at a visit, inside its window: baseline 0-5 days before its target
    day, a follow-up visit around its target day (SD ``VISIT_JITTER_SD`` days)."""
    if visit.is_baseline:
        d = visit.day - rng.integers(0, 6, n)
    else:
        d = visit.day + np.rint(rng.normal(0, VISIT_JITTER_SD, n)).astype(int)
    return np.clip(d, *visit.window)


def _check_effects(trial: Trial, effects: dict) -> dict:
    """Effects as {arm: {code: value}}; unknown arms or endpoints raise instead of being ignored."""
    lab_codes = {e.code for e in trial.lab_endpoints} | set(_hazard_ratio_keys(trial))
    for arm, eff in effects.items():
        if arm not in trial.arm_codes or arm == trial.control_arm:
            raise ValueError(f"effects: {arm!r} is not a non-control arm of {trial.id} ({trial.arm_codes})")
        bad = [k for k in eff if k not in lab_codes]
        if bad:
            raise ValueError(f"effects[{arm!r}]: {bad} are not lab endpoints of {trial.id} nor hazard ratios "
                             f"({sorted(_hazard_ratio_keys(trial))})")
    return {arm: dict(eff) for arm, eff in effects.items()}


def _failure_weights(trial: Trial) -> dict[str, float]:
    """Screen-failure reasons in a fixed order (age below, above the range; then each criterion's column), with weights:
    the trial file's ``simulation.screen_failures`` for a column it names, else by the criterion's kind."""
    out = {_AGE_LOW: _FAILURE_WEIGHTS[_AGE_LOW], _AGE_HIGH: _FAILURE_WEIGHTS[_AGE_HIGH]} if trial.age_range else {}
    stated = dict(trial.simulation.screen_failures)
    for c in trial.eligibility:
        kind = "consent" if c.consent else c.kind
        out[c.column] = float(stated.get(c.column, _FAILURE_WEIGHTS[kind]))
    return out


DEFAULT_AGE_RANGE = (18, 80)  # ages of the synthetic cohort when the trial file states no age bounds


def _eligible_age(age, lo: int, hi: int):
    """An eligible participant's age (years, fractional): the drawn age clipped to 1 year above the youngest and half a
    year below the oldest bound, so that the completed years at screening lie inside the range."""
    return np.clip(age, lo + 1.0, hi - 0.5)


def draw_demographics(trial: Trial, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Sex (CDISC F/M) and age in completed years of ``n`` eligible participants, by the screening log's rules for
    them: female with probability ``simulation.female``, age ~ N(``simulation.age``) inside the trial's age range."""
    lo, hi = trial.age_range or DEFAULT_AGE_RANGE
    female = rng.random(n) < trial.simulation.female
    age = np.floor(_eligible_age(rng.normal(*trial.simulation.age, n), lo, hi))
    return {"SEX": np.where(female, "F", "M").astype(object), "AGE": age}


def simulate_screening(trial: Trial, rng: np.random.Generator, fake: Faker) -> pd.DataFrame:
    """Screening log over the accrual period: identities, eligibility flags and who is eligible.

    About ``screened_per_randomized`` x planned_n people; exactly planned_n are eligible and
    consent. Every failure reason (age outside the trial's range, each inclusion criterion not met,
    each exclusion flag) occurs at least once, mostly one reason per screen failure. The hidden
    column ``_eligible`` marks who goes on to randomization.
    """
    sim = trial.simulation
    n_rand = trial.planned_n
    weights = _failure_weights(trial)
    categories = baseline_categories(trial)
    all_reasons = list(weights)
    n_fail = max(int(round(sim.screened_per_randomized * n_rand)) - n_rand, len(all_reasons))
    n = n_rand + n_fail
    reasons = list(rng.permutation(np.array(all_reasons, dtype=object)))
    reasons += choose(rng, weights, n_fail - len(all_reasons))
    exclusions = [c.column for c in trial.eligibility if c.kind == "exclusion"]
    second = {r: 1.0 for r in exclusions if r != _PREGNANT}
    failures = [{r} | ({choose(rng, second)} if rng.random() < 0.12 else set()) for r in reasons]
    failures += [set() for _ in range(n_rand)]
    failures = [failures[i] for i in rng.permutation(n)]

    start = trial.accrual_start or DEFAULT_ACCRUAL_START
    days = (_add_months(start, trial.accrual_months) - start).days
    screen_dates = sorted(start + dt.timedelta(days=int(d)) for d in rng.integers(0, max(days - 14, 1), n))

    area_codes = [a for a in _ZhSsn.area_codes if not a.endswith("00")]
    liaoning = [a for a in area_codes if a.startswith("21")]
    lo, hi = trial.age_range or DEFAULT_AGE_RANGE
    rows = []
    for i, (fail, sdate) in enumerate(zip(failures, screen_dates)):
        pregnant = _PREGNANT in fail
        sex = "F" if pregnant or rng.random() < sim.female else "M"
        if _AGE_LOW in fail:
            age = rng.uniform(lo - 1.9, lo - 0.1)
        elif _AGE_HIGH in fail:
            age = rng.uniform(hi + 1.1, hi + 8.0)
        elif pregnant:
            age = rng.uniform(22.0, 44.0)
        else:
            age = float(_eligible_age(rng.normal(*sim.age), lo, hi))
        birth = sdate - dt.timedelta(days=int(age * 365.25))
        area = str(fake.random_element(liaoning if rng.random() < 0.8 else area_codes))
        flags = {c.column: ("N" if c.column in fail else "Y") if c.kind == "inclusion" else
                 ("Y" if c.column in fail else "N") for c in trial.eligibility}
        rows.append({
            "screening_id": f"S{i + 1:03d}",
            "name": fake.name_male() if sex == "M" else fake.name_female(),
            "phone": fake.phone_number(),
            "id_number": _id_number(area, birth, sex, int(rng.integers(0, 500))),
            "birth_date": birth, "sex": sex, "screening_date": sdate,
            **{col: choose(rng, w) for col, w in categories.items()},
            **flags,
            "_eligible": not fail,
        })
    out = pd.DataFrame(rows)
    ages = [_completed_years(b, s) for b, s in zip(out["birth_date"], out["screening_date"])]
    if out["_eligible"].sum() != n_rand or any(not lo <= a <= hi for a, e in zip(ages, out["_eligible"]) if e):
        raise RuntimeError("screening simulation produced a wrong number of eligible people")
    return out


DEFAULT_SEED = SIMULATION_DEFAULTS["seed"]
DEFAULT_ACCRUAL_START = dt.date(2025, 1, 1)


def simulation_seed(trial: Trial) -> int:
    """The synthetic cohort's seed: the trial file's ``simulation.seed``, else the book's stated ``DEFAULT_SEED``."""
    return int(trial.simulation.seed)


def seed_text(trial: Trial, seed: int | None = None) -> str:
    """The seed as a page names it: the one given, the trial file's, or the default said to be one."""
    if seed is not None or "seed" in trial.simulation.stated:
        return str(simulation_seed(trial) if seed is None else seed)
    return f"{DEFAULT_SEED}, the book's default: the trial file states no simulation seed"


def simulate_randomization(trial: Trial, screening: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Randomization log: the eligible people, 1-14 days after screening, in order of randomization.

    Study numbers ``SS-NNN`` (site-sequence) follow the order of randomization and take the arm and
    block of the next row of the trial's allocation list (``randomization.allocation_list``, seeded
    by ``randomization.seed`` in the trial file, independent of the cohort's random stream; without a
    seed or list file, seeded from the cohort's stream), as a site opens the next envelope. Stratified lists are not simulated (no stratum membership).
    """
    if trial.strata:
        raise NotImplementedError(f"{trial.id}: the simulator does not assign strata; simulate unstratified trials")
    elig = screening[screening["_eligible"]].reset_index(drop=True)
    rand_date = [d + dt.timedelta(days=int(k)) for d, k in zip(elig["screening_date"], rng.integers(1, 15, len(elig)))]
    elig = elig.assign(rand_date=rand_date).sort_values(["rand_date", "screening_id"], kind="stable")
    seed = None if has_allocation_list(trial) else int(rng.integers(2**31))
    alloc = allocation_list(trial, n=len(elig), seed=seed).head(len(elig))
    return pd.DataFrame({
        "subject_id": [f"{SITE_NUMBER:02d}-{k:03d}" for k in range(1, len(elig) + 1)],
        "screening_id": elig["screening_id"].to_numpy(),
        "name": elig["name"].to_numpy(),
        "rand_date": elig["rand_date"].to_numpy(),
        "block": alloc["block"].to_numpy(),
        "arm": alloc["arm"].to_numpy(),
    })


def _hazard_ratios(trial: Trial, received: np.ndarray, effects: dict) -> dict[str, np.ndarray]:
    """Per event type, each participant's hazard ratio: the product of the received arm's ``<CODE>_HR`` effects of
    the time-to-event endpoints that count that event type (1 without any)."""
    keys = _hazard_ratio_keys(trial)
    out = {}
    for code in event_codes(trial)[:-1]:
        acting = [k for k, events in keys.items() if code in events]
        hr = np.ones(len(received))
        for k in acting:
            hr = hr * np.array([effects.get(a, {}).get(k, 1.0) for a in received], dtype=float)
        out[code] = hr
    return out


def simulate_participants(trial: Trial, screening: pd.DataFrame, randomization: pd.DataFrame,
                          rng: np.random.Generator, effects: dict) -> pd.DataFrame:
    """Per-participant hidden state: severity, arm received, study day 1, visit days and how follow-up ends.

    Study day 1 (``day1_date``) is the first dose, 0-3 days after randomization, or the
    randomization date itself when the trial's ``treatment.start`` is ``randomization``.

    Death and each intercurrent event of the trial file end follow-up with hazards rising with severity
    (``event_hazards``: calibrated to ``death_rate_24w`` and ``simulation.event_rates``; an arm's hazard ratio
    ``<CODE>_HR`` of a time-to-event endpoint multiplies the hazards of that endpoint's events); withdrawal has a
    constant hazard (``withdrawal_rate``). Death times use stratified uniforms (one per n-tile, shuffled), so each
    cohort's death count stays near the assumed rate instead of varying binomially. Follow-up ends at the first of
    these or at the last scheduled visit (completion). One participant at most (half of the cohorts) receives
    another arm than allocated. The baseline categories of the screening log (``simulation.baseline``) are carried.
    """
    sim = trial.simulation
    n = len(randomization)
    arms = trial.arm_codes
    received = randomization["arm"].to_numpy(dtype=object).copy()
    if n and rng.random() < SWITCH_PROBABILITY:
        k = int(rng.integers(n))
        received[k] = arms[(arms.index(received[k]) + 1) % len(arms)]
    severity = rng.normal(size=n)
    delay = day1_delays(trial, rng, n)
    first_inf = [d + dt.timedelta(days=int(k)) for d, k in zip(randomization["rand_date"], delay)]

    days = {v.code: visit_days(v, rng, n) for v in trial.visits}
    screen_day = {s: d for s, d in zip(screening["screening_id"], screening["screening_date"])}
    lower = np.array([(screen_day[s] - f).days + 1 for s, f in zip(randomization["screening_id"], first_inf)])
    base = trial.baseline_visit.code
    days[base] = np.maximum(days[base], lower)

    rates = event_hazards(trial, severity, _hazard_ratios(trial, received, effects))
    uniforms = event_uniforms(rng, n, rates.shape[1], stratified=True)
    ends, end_day = end_of_follow_up(trial, rates, uniforms, days[trial.last_visit.code].astype(float))
    end_day = end_day.astype(int)

    scr = screening.set_index("screening_id")
    out = pd.DataFrame({
        "subject_id": randomization["subject_id"], "arm": randomization["arm"], "arm_received": received,
        "severity": severity, "day1_date": first_inf, "end": ends, "end_day": end_day,
        **{col: randomization["screening_id"].map(scr[col]).to_numpy() for col in baseline_categories(trial)},
    })
    for v in trial.visits:
        missed = (rng.random(n) < sim.missed_visit_rate) & (not v.is_baseline)
        out[f"day_{v.code}"] = days[v.code]
        out[f"done_{v.code}"] = ~missed & ((days[v.code] < end_day) | ((ends == "COMPLETED") & (days[v.code] <= end_day)))
    return out


def simulate_dosing(trial: Trial, people: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One row per dose given: the regimen's doses (``simulation.doses_per_arm``, else 1) 4 weeks apart, none after
    follow-up ends.

    Dose about the trial file's ``simulation.dose`` (SD 4%), clipped to the trial's dose range; a few doses stop
    early (completed N, 40-80% of the dose).
    """
    lo, hi = trial.treatment.dose_range
    typical = trial.simulation.dose
    rows = []
    for p in people.itertuples(index=False):
        for k in range(trial.simulation.doses(p.arm_received)):
            day = 1 + 28 * k + (int(rng.integers(0, 3)) if k else 0)
            if k and day >= p.end_day:
                break
            stopped = rng.random() < 0.04
            dose = rng.uniform(0.4 * typical, 0.8 * typical) if stopped else rng.normal(typical, 0.04 * typical)
            rows.append({"subject_id": p.subject_id, "dose_no": k + 1,
                         "dose_date": p.day1_date + dt.timedelta(days=day - 1),
                         "arm_received": p.arm_received, "dose": round(float(np.clip(dose, lo, hi)), 1),
                         "completed": "N" if stopped else "Y"})
    return pd.DataFrame(rows, columns=export_spec(trial)["dosing"].column_names)


def _effect_on_log_scale(trial: Trial, model: LabModel) -> bool:
    """Whether an effect on this test is a shift on the log scale: the endpoint's analysis scale (``log`` of the trial
    file's endpoint), else the model's."""
    endpoint = next((e for e in trial.lab_endpoints if e.code == model.code), None)
    return model.log if endpoint is None else endpoint.log


def effect_ramp(trial: Trial) -> np.ndarray:
    """Fraction of a treatment effect (and of the common trend) reached at each visit: linear in the week, full at the
    last follow-up week."""
    weeks = np.array([v.week for v in trial.visits], dtype=float)
    return np.clip(weeks / max(trial.followup_weeks, 1), 0, 1)


def simulate_lab_values(trial: Trial, people: pd.DataFrame, rng: np.random.Generator, effects: dict) -> dict:
    """Each simulated lab test (``lab_models``) on its natural scale, keyed by its column (code in lower case), shape
    (participants, visits), before dropping missed visits.

    ``people`` gives each participant's ``severity``, ``arm_received`` and the baseline columns a model shifts by.
    Analysis-scale value = median + loading x severity + random intercept + residual correlated between visits
    (exp(-weeks apart / 12)) + shift + common trend x w, with w = week / last follow-up week, clipped; the arm's
    effect x w is added on the endpoint's analysis scale (log or natural). A test ``from`` another is factor x that
    test + N(0, within_sd), plus its own effect less the one passed on from the other test (factor x its effect).
    """
    n = len(people)
    weeks = np.array([v.week for v in trial.visits], dtype=float)
    ramp = effect_ramp(trial)
    corr = np.exp(-np.abs(weeks[:, None] - weeks[None, :]) / _RESIDUAL_WEEKS)
    chol = np.linalg.cholesky(corr)
    sev = people["severity"].to_numpy()[:, None]
    eff = [effects.get(a, {}) for a in people["arm_received"]]
    models = lab_models(trial)
    intercepts = {}
    out = {}
    for code, m in models.items():
        if m.source is not None:
            shift = np.array([e.get(code, 0.0) - m.factor * e.get(m.source, 0.0) for e in eff])[:, None]
            src = out[m.source.lower()]
            out[code.lower()] = np.clip(m.factor * src + rng.normal(0, m.within_sd, src.shape) + shift * ramp,
                                        m.low, m.high)
            continue
        u = rng.normal(0, m.between_sd, (n, 1))
        if m.correlated is not None:
            other, r = m.correlated
            u = r * intercepts[other] * m.between_sd / models[other].between_sd + math.sqrt(1 - r * r) * u
        intercepts[code] = u
        resid = rng.normal(0, m.within_sd, (n, len(weeks))) @ chol.T
        centre = np.log(m.median) if m.log else m.median
        shift = 0.0
        if m.shift is not None:
            column, levels = m.shift
            shift = np.array([dict(levels).get(v, 0.0) for v in people[column]], dtype=float)[:, None]
        effect = np.array([e.get(code, 0.0) for e in eff])[:, None]
        y = centre + m.severity * sev + u + resid + shift + m.trend * ramp
        on_log = _effect_on_log_scale(trial, m)
        if m.log:
            value = np.exp(y + effect * ramp) if on_log else np.exp(y) + effect * ramp
        else:
            value = y * np.exp(effect * ramp) if on_log else y + effect * ramp
        out[code.lower()] = np.clip(value, m.low, m.high)
    return out


def simulate_clinical_values(trial: Trial, severity: np.ndarray, labs: dict, rng: np.random.Generator) -> dict:
    """The clinical file's grades (categories) and flags (booleans), shape (participants, visits), by the trial file's
    ``simulation.clinical`` model; {} (and no draws) when it declares none.

    Severity at a visit is the baseline severity moved by the change of the followed test (log scale for a log
    model) over that test's severity loading, so a participant who improves (by time or treatment) tends to move to
    a milder grade; a person-level propensity keeps grades stable within a participant. A flag is Y with its
    probability when its test is above the threshold, and rarely otherwise.
    """
    model = trial.simulation.clinical
    if model is None:
        return {}
    follows = lab_models(trial)[model.follows]
    if follows.severity == 0:
        raise ValueError(f"{trial.id}: simulation.clinical.follows {model.follows}: its lab model has no severity "
                         "loading, so a change in it cannot move the severity")
    x = labs[model.follows.lower()]
    n, nv = x.shape
    change = np.log(x / x[:, :1]) if follows.log else x - x[:, :1]
    sev_t = np.asarray(severity)[:, None] + change / follows.severity
    out = {}
    for g in model.grades:
        latent = g.severity * sev_t + rng.normal(0, g.between_sd, (n, 1)) + rng.normal(0, g.within_sd, (n, nv))
        out[g.column] = np.select([latent < c for c in g.cuts], list(g.levels[:-1]), g.levels[-1])
    for f in model.flags:
        out[f.column] = (labs[f.lab.lower()] > f.above) & (rng.random((n, nv)) < f.probability) | (
            rng.random((n, nv)) < f.otherwise)
    return out


def simulate_labs(trial: Trial, people: pd.DataFrame, labs: dict) -> pd.DataFrame:
    """One row per participant and attended visit, one column per panel test (rounded to its decimals);
    sampling date = study day 1 + study day - 1."""
    decimals = {t.column: t.decimals for t in trial.lab_panel}
    cols = ["subject_id", "visit", "lab_date"] + list(decimals)
    rows = []
    for j, v in enumerate(trial.visits):
        done = people[f"done_{v.code}"].to_numpy()
        for i in np.flatnonzero(done):
            p = people.iloc[i]
            row = {"subject_id": p["subject_id"], "visit": v.code,
                   "lab_date": p["day1_date"] + dt.timedelta(days=int(p[f"day_{v.code}"]) - 1)}
            row.update({c: round(float(labs[c][i, j]), d) for c, d in decimals.items()})
            rows.append(row)
    out = pd.DataFrame(rows, columns=cols)
    for c, d in decimals.items():
        if d == 0:
            out[c] = out[c].astype("int64")
    return out


def simulate_clinical(trial: Trial, people: pd.DataFrame, labs: dict, rng: np.random.Generator) -> pd.DataFrame | None:
    """The clinical file: the grades and flags of ``simulate_clinical_values`` at each attended visit; None (no file)
    when the trial file's simulation section declares no clinical model."""
    values = simulate_clinical_values(trial, people["severity"].to_numpy(), labs, rng)
    if trial.simulation.clinical is None:
        return None
    flags = {f.column for f in trial.simulation.clinical.flags}
    rows = []
    for j, v in enumerate(trial.visits):
        for i in np.flatnonzero(people[f"done_{v.code}"].to_numpy()):
            p = people.iloc[i]
            rows.append({"subject_id": p["subject_id"], "visit": v.code,
                         "assessment_date": p["day1_date"] + dt.timedelta(days=int(p[f"day_{v.code}"]) - 1),
                         **{c: ("Y" if x[i, j] else "N") if c in flags else x[i, j] for c, x in values.items()}})
    contract = export_spec(trial)["clinical"].column_names
    return pd.DataFrame(rows, columns=contract + [c for c in values if c not in contract])


def _ae(rng: np.random.Generator, term: str, start: dt.date, end_limit: dt.date, serious: bool,
        related: str, duration: float, led_to_withdrawal: bool = False, end: dt.date | None = None) -> dict:
    """One AE row; resolved after ``duration`` days unless that falls after follow-up ends (then ongoing)."""
    if serious:
        severity = "severe" if rng.random() < 0.7 else "moderate"
    else:
        severity = choose(rng, {"mild": 0.65, "moderate": 0.3, "severe": 0.05})
    if end is None:
        end = start + dt.timedelta(days=int(np.ceil(duration)))
        end = end if end <= end_limit else None
    return {"event_type": "AE", "term": term, "start_date": start, "end_date": end,
            "serious": "Y" if serious else "N", "severity": severity, "relatedness": related,
            "led_to_withdrawal": "Y" if led_to_withdrawal else "N"}


def simulate_events(trial: Trial, people: pd.DataFrame, dosing: pd.DataFrame | None,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Adverse events, then how follow-up ended (DEATH, an intercurrent event of the trial file, WITHDRAWAL or
    COMPLETED), by the trial file's ``simulation.adverse_events`` and ``death_causes``.

    Reactions cluster in the days after each dose; an arm's own terms (``by_arm``) only after its doses; events of the
    disease (``during_follow_up``) arrive over follow-up, more often in sicker participants. A death comes with a
    serious AE of its cause (when the trial file names causes); an intercurrent event is written with its term; a
    physician's withdrawal is sometimes due to an AE of the disease. Without a dosing file (``dosing`` None) there
    are no reactions to doses.
    """
    last_week = max(v.week for v in trial.visits)
    dose_dates = {} if dosing is None else dosing.groupby("subject_id")["dose_date"].apply(list).to_dict()
    model = trial.simulation.adverse_events
    after_dose = dict(model.after_dose)
    during = {term: weight for term, weight, _ in model.during_follow_up}
    serious = {term: p for term, _, p in model.during_follow_up}
    causes = dict(trial.simulation.death_causes)
    terms = {m.code: m.term for m in event_models(trial)}
    rows = []
    for p in people.itertuples(index=False):
        start = p.day1_date
        end = start + dt.timedelta(days=int(p.end_day) - 1)
        ev = []
        for d in dose_dates.get(p.subject_id, []):
            for term in choose(rng, after_dose, rng.poisson(model.after_dose_rate)) if after_dose else ():
                onset = min(d + dt.timedelta(days=int(rng.integers(0, 3))), end)
                ev.append(_ae(rng, term, onset, end, rng.random() < 0.02,
                              choose(rng, {"possible": 0.5, "probable": 0.3, "unlikely": 0.2}), rng.exponential(2)))
            for term, prob in model.arm_terms(p.arm_received).items():
                if rng.random() < prob:
                    onset = min(d + dt.timedelta(days=int(rng.integers(0, 2))), end)
                    ev.append(_ae(rng, term, onset, end, False,
                                  choose(rng, {"probable": 0.6, "definite": 0.4}), rng.exponential(3)))
        span = max((end - start).days, 1)
        n_during = rng.poisson(model.per_24_weeks * np.exp(AE_SEVERITY * p.severity) * span / 168) if during else 0
        for term in choose(rng, during, n_during) if during else ():
            onset = start + dt.timedelta(days=int(rng.integers(0, span + 1)))
            ev.append(_ae(rng, term, onset, end, rng.random() < serious[term],
                          choose(rng, {"not related": 0.7, "unlikely": 0.25, "possible": 0.05}), rng.exponential(10)))
        term = ""
        if p.end == "DEATH":
            if causes:
                term = choose(rng, causes)
                onset = max(end - dt.timedelta(days=int(rng.integers(0, 8))), start)
                ae = _ae(rng, term, onset, end, True, choose(rng, {"not related": 0.8, "unlikely": 0.2}), 0, end=end)
                ev.append({**ae, "severity": "severe"})
        elif p.end in terms:
            term = terms[p.end]
        elif p.end == "WITHDRAWAL":
            term = choose(rng, _WITHDRAWAL_TERMS)
            if term == "physician decision" and rng.random() < 0.5 and during:
                onset = max(end - dt.timedelta(days=int(rng.integers(0, 6))), start)
                ev.append(_ae(rng, choose(rng, during), onset, end, True,
                              choose(rng, {"not related": 0.6, "unlikely": 0.3, "possible": 0.1}),
                              rng.exponential(10), led_to_withdrawal=True))
        else:
            term = f"completed week {last_week}"
        ev.sort(key=lambda e: (e["start_date"], e["term"]))
        ev.append({"event_type": p.end, "term": term, "start_date": end, "end_date": None, "serious": None,
                   "severity": None, "relatedness": None, "led_to_withdrawal": None})
        rows += [{"subject_id": p.subject_id, "event_id": k + 1, **e} for k, e in enumerate(ev)]
    return pd.DataFrame(rows, columns=export_spec(trial)["events"].column_names)


class SimulatedExport(dict):
    """The export's frames keyed by file name, with the trial they follow (``write_export`` needs it)."""

    def __init__(self, frames: dict, trial: Trial):
        super().__init__(frames)
        self.trial = trial


def _typed(frame: pd.DataFrame, spec: FileSpec, trial: Trial) -> pd.DataFrame:
    """Contract column order; dates as datetime64; categories (incl. arms, visits) as ordered categoricals. A contract
    column the cohort does not model (e.g. a clinical grade the trial file does not simulate) is left empty; columns
    beyond the contract (a baseline category or grade of the trial file) follow it; hidden ones (``_...``) are dropped."""
    frame = frame.assign(**{c.name: None for c in spec.columns if c.name not in frame and not c.optional_column})
    cols = [c for c in spec.columns if c.name in frame]
    extra = [c for c in frame.columns if c not in spec.column_names and not str(c).startswith("_")]
    out = frame[[c.name for c in cols] + extra].copy()
    for c in cols:
        if c.type == "date":
            out[c.name] = pd.to_datetime(out[c.name])
        elif c.type == "category":
            out[c.name] = pd.Categorical(out[c.name], categories=list(c.allowed_values(trial)), ordered=True)
        elif c.type == "integer":
            out[c.name] = out[c.name].astype("int64")
    return out.reset_index(drop=True)


def _truncate(frames: dict, cutoff: dt.date) -> dict:
    """The export as sent on ``cutoff``: nobody screened or randomized after it, no record dated after it,
    AE end dates after it left empty."""
    cut = pd.Timestamp(cutoff)
    out = dict(frames)
    out["screening"] = frames["screening"][frames["screening"]["screening_date"] <= cut]
    rand = frames["randomization"][frames["randomization"]["rand_date"] <= cut]
    out["randomization"] = rand
    for name, col in (("dosing", "dose_date"), ("labs", "lab_date"), ("clinical", "assessment_date"),
                      ("events", "start_date")):
        if name in frames:
            t = frames[name]
            out[name] = t[(t[col] <= cut) & t["subject_id"].isin(rand["subject_id"])]
    ev = out["events"].copy()
    ev.loc[ev["end_date"] > cut, "end_date"] = pd.NaT
    out["events"] = ev
    return {name: t.reset_index(drop=True) for name, t in out.items()}


def _sample_limits(trial: Trial, frames: dict, people: pd.DataFrame, cutoff: dt.date | None) -> pd.DataFrame:
    """Per participant still in the export: study day 1 and the last date a sample may have."""
    ev = frames["events"]
    ends = ev[ev["event_type"].isin(trial.end_of_follow_up_codes)].set_index("subject_id")
    stop = ends["start_date"] - pd.to_timedelta((ends["event_type"] != "COMPLETED").astype(int), unit="D")
    p = people.set_index("subject_id").loc[frames["randomization"]["subject_id"]]
    last = stop.reindex(p.index).fillna(pd.Timestamp(cutoff) if cutoff else pd.NaT)
    if cutoff:
        last = last.clip(upper=pd.Timestamp(cutoff))
    return pd.DataFrame({"day1": pd.to_datetime(p["day1_date"]), "last": last})


def _resample(row: pd.Series, date, visit: str, rng: np.random.Generator, decimals: dict) -> dict:
    """Another sample of a participant near ``row``'s: each value moved by about 5%."""
    vals = {c: round(float(row[c]) * float(np.exp(rng.normal(0, 0.05))), d) for c, d in decimals.items()}
    return {**row.to_dict(), "visit": visit, "lab_date": pd.Timestamp(date),
            **{c: int(v) if decimals[c] == 0 else v for c, v in vals.items()}}


def _extra_samples(trial: Trial, labs: pd.DataFrame, limits: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One or two UNSCHEDULED samples outside every visit window and one second sample of a scheduled
    visit 1-2 days from the first, inside the window (a retest, or an earlier insufficient sample)."""
    decimals = {t.column: t.decimals for t in trial.lab_panel}
    rows, comments = [], []
    subjects = rng.permutation(limits.index.to_numpy())
    n_unscheduled = int(rng.integers(1, 3))
    for sid in subjects:
        if len(rows) == n_unscheduled:
            break
        day1, last = limits.loc[sid, "day1"], limits.loc[sid, "last"]
        own = labs[labs["subject_id"] == sid]
        if own.empty or pd.isna(last):
            continue
        days = [d for d in range(2, (last - day1).days + 2) if not any(v.holds(d) for v in trial.visits)]
        if days:
            date = day1 + pd.Timedelta(days=int(rng.choice(days)) - 1)
            before = own[own["lab_date"] < date]
            row = (before if len(before) else own).iloc[-1]
            rows.append(_resample(row, date, "UNSCHEDULED", rng, decimals))
            comments.append(str(choose(rng, dict.fromkeys(trial.simulation.unscheduled_reasons, 1))))
    followup = labs[labs["visit"].astype(str) != trial.baseline_visit.code]
    for k in rng.permutation(len(followup)):
        row = followup.iloc[k]
        lim = limits.loc[row["subject_id"]]
        visit = trial.visit(str(row["visit"]))
        gap = pd.Timedelta(days=int(rng.integers(1, 3)))
        ok = [d for d in (row["lab_date"] + gap, row["lab_date"] - gap)
              if d <= lim["last"] and visit.holds((d - lim["day1"]).days + 1)]
        if ok:
            rows.append(_resample(row, ok[0], str(row["visit"]), rng, decimals))
            comments.append("retest" if ok[0] > row["lab_date"] else "first sample insufficient, redrawn")
            break
    return pd.DataFrame(rows, columns=labs.columns).assign(lab_comment=comments)


def _add_quirks(trial: Trial, frames: dict, people: pd.DataFrame, rng: np.random.Generator,
                cutoff: dt.date | None) -> dict:
    """The quirks of a real export (see the module docstring), drawn from ``rng`` only."""
    out = dict(frames)
    labs = frames["labs"].assign(lab_comment=None)
    if len(labs):
        extra = _extra_samples(trial, labs, _sample_limits(trial, frames, people, cutoff), rng)
        labs = pd.concat([labs, extra.astype({"visit": labs["visit"].dtype})], ignore_index=True)
    tests = [t.column for t in trial.lab_panel]
    labs[tests] = labs[tests].astype(object)
    miss = rng.random((len(labs), len(tests))) < CELL_MISSING_RATE
    for i in np.flatnonzero(miss.all(axis=1)):
        miss[i, rng.integers(len(tests))] = False
    codes = rng.choice(["", "ND", "HEMOLYZED"], size=int(miss.sum()), p=[0.75, 0.17, 0.08])
    if len(codes) and "HEMOLYZED" not in codes:
        codes[rng.integers(len(codes))] = "HEMOLYZED"
    for i, j, code in zip(*np.nonzero(miss), codes):
        labs.iat[i, labs.columns.get_loc(tests[j])] = str(code) or None
        if code == "HEMOLYZED":
            labs.iat[i, labs.columns.get_loc("lab_comment")] = "haemolysed sample"
    for col in [code.lower() for code, m in lab_models(trial).items() if m.below_limit and code.lower() in tests]:
        values = pd.to_numeric(labs[col].where(labs[col].map(lambda v: not isinstance(v, str))), errors="coerce")
        if values.notna().any():
            i = values.idxmin()
            labs.at[i, col] = f"<{5 * (int(values[i] // 5) + 1)}"
    out["labs"] = labs.sort_values(["subject_id", "visit", "lab_date"], kind="stable").reset_index(drop=True)

    if "clinical" in frames:
        clinical = frames["clinical"].copy()
        grades = [g.column for g in trial.simulation.clinical.grades]
        if len(clinical) and grades:
            clinical[grades] = clinical[grades].astype(object)
            for i in rng.choice(len(clinical), size=min(int(rng.integers(1, 3)), len(clinical)), replace=False):
                clinical.at[i, str(rng.choice(grades))] = "ND"
        out["clinical"] = clinical

    scr = frames["screening"].copy()
    given = rng.random(len(scr)) < 0.1
    ages = [_completed_years(b.date(), s.date()) if g else None
            for b, s, g in zip(scr["birth_date"], scr["screening_date"], given)]
    scr.insert(scr.columns.get_loc("birth_date") + 1, "age", pd.array(ages, dtype="Int64"))
    out["screening"] = scr
    return out


def simulate_export(trial: Trial, seed: int | None = None, effects: dict | None = None, realistic: bool = True,
                    cutoff: str | dt.date | None = None) -> SimulatedExport:
    """All files of the export for a synthetic cohort of ``trial``, keyed by file name.

    ``seed`` defaults to the trial's simulation seed, ``effects`` to its simulation effects ({arm: {LAB_CODE: effect
    at the last week vs control on the analysis scale, "<CODE>_HR": hazard ratio of the events of the time-to-event
    endpoint CODE, e.g. OS_HR}}); ``effects={}`` is the null scenario. ``realistic`` adds the quirks of a real export
    (module docstring); ``cutoff`` (default: the trial's) truncates the export to that date. Neither changes the
    cohort's random draws. No dosing file when day 1 is the randomization, no clinical file without a clinical model.
    """
    lab_models(trial)
    seed = simulation_seed(trial) if seed is None else seed
    effects = _check_effects(trial, trial.simulation.effect_map() if effects is None else effects)
    cutoff = trial.cutoff if cutoff is None or cutoff == "" else trial.with_cutoff(cutoff).cutoff
    spec = export_spec(trial)
    rng = np.random.default_rng(seed)
    fake = _faker()
    fake.seed_instance(seed)
    screening = simulate_screening(trial, rng, fake)
    randomization = simulate_randomization(trial, screening, rng)
    people = simulate_participants(trial, screening, randomization, rng, effects)
    dosing = simulate_dosing(trial, people, rng) if trial.has_dosing_file else None
    labs = simulate_lab_values(trial, people, rng, effects)
    frames = {
        "screening": screening,
        "randomization": randomization,
        "dosing": dosing,
        "labs": simulate_labs(trial, people, labs),
        "clinical": simulate_clinical(trial, people, labs, rng),
        "events": simulate_events(trial, people, dosing, rng),
    }
    frames = {name: _typed(frames[name], spec[name], trial) for name in spec if frames[name] is not None}
    if cutoff is not None:
        frames = _truncate(frames, cutoff)
    if realistic:
        frames = _add_quirks(trial, frames, people, np.random.default_rng(None if seed is None else [seed, 7]), cutoff)
    return SimulatedExport(frames, trial)


def _cell(value, kind: str, decimals: int) -> str:
    """One CSV cell: text as it is, ISO dates, fixed decimals, empty for missing."""
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""
    if kind == "date":
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    if kind == "integer":
        return str(int(value))
    if kind == "number":
        return f"{float(value):.{decimals}f}"
    return str(value)


def write_export(frames: dict[str, pd.DataFrame], out_dir, trial: Trial | None = None) -> list[Path]:
    """Write each frame to ``<name>.csv``: utf-8, "\\n" line ends, rows sorted by key.

    Columns: the contract's (``schema.export_spec(trial)``) in its order, optional ones only if
    present, then any extra columns of the frame. ``trial`` defaults to the one the frames of
    ``simulate_export`` carry. Output bytes depend only on the frames, so the same seed gives
    identical files.
    """
    trial = trial or getattr(frames, "trial", None)
    if trial is None:
        raise ValueError("write_export needs the trial: pass trial= (frames from simulate_export carry it)")
    spec = export_spec(trial)
    unknown = sorted(set(frames) - set(spec))
    if unknown:
        raise ValueError(f"not files of the export schema: {unknown}")
    decimals = {t.column: t.decimals for t in trial.lab_panel} | {"dose": 1}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fs in spec.items():
        if name not in frames:
            continue
        frame = frames[name]
        contract = [c for c in fs.columns if c.name in frame.columns]
        missing = [c.name for c in fs.columns if c.name not in frame.columns and not c.optional_column]
        cols = [c.name for c in contract]
        if missing or list(frame.columns[:len(cols)]) != cols:
            raise ValueError(f"{name}: columns {list(frame.columns)} must start with the contract's {cols}"
                             + (f" (missing {missing})" if missing else ""))
        frame = frame.sort_values(list(fs.key), kind="stable")
        kinds = [c.type for c in contract] + ["string"] * (frame.shape[1] - len(cols))
        header = list(frame.columns)
        path = out_dir / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            for row in frame.itertuples(index=False, name=None):
                writer.writerow([_cell(v, k, decimals.get(c, 6)) for v, k, c in zip(row, kinds, header)])
        paths.append(path)
    return paths
