"""Operating characteristics of the design by simulation: what could the trial, as planned, detect?

The trial is simulated as designed, from its trial file: ``planned_n`` participants allocated by the
trial's permuted blocks in its arm ratio, its visits and windows, and the ``simulation`` block's death,
intercurrent-event, withdrawal and missed-visit rates and its disease model. Each scenario sets the true effect
of the experimental arm(s) on the primary endpoint (time to event: a hazard ratio of its events, reported also as
the event probabilities by the horizon it implies; continuous: a shift in its change from baseline at the primary
visit, ``trial.primary_visit``) and on the key secondary endpoint (``trial.key_secondary``: a shift in its change
from baseline at the last visit); shifts are on the analysis scale: log scale for ``log: true`` endpoints, points
for scores. Every replicate is then analysed by the book's own helpers, exactly as the chapters call them:

* a time-to-event primary endpoint: the primary test the trial file names (``trial.primary_test``:
  ``survival.fisher_survivors``, ``survival.logrank`` or ``survival.cox_hr``), and the Kaplan-Meier difference in
  event-free survival at the horizon with its Greenwood standard error (``survival.survival_at_horizon``) as the
  primary estimate; a continuous primary endpoint: the MMRM contrast at the primary visit
  (``outcomes.mmrm_table``, ``findings.primary_row``), as the findings module decides it;
* the key secondary MMRM (``outcomes.mmrm_table``, ``findings.key_secondary_row``) at the last visit;
* the fixed-sequence decisions of the analysis plan (``findings.decisions``).

The cohort is drawn by the public functions of ``helpers.data.simulation`` (the generator of the book's synthetic
cohort), so both follow one model: the baseline categories (``draw_baseline``), study day 1 (``day1_delays``),
visit days within their windows (``visit_days``), the competing hazards of death, each intercurrent event and
withdrawal (``event_hazards``, calibrated by ``hazard_scale``), the end of follow-up (``event_uniforms``,
``end_of_follow_up``), the lab values (``simulate_lab_values``) and the clinical grades
(``simulate_clinical_values``), the share of lab cells missing (``CELL_MISSING_RATE``) and of cohorts with one
participant receiving another arm (``SWITCH_PROBABILITY``), the ramp of effects to the last visit (``effect_ramp``);
the allocation list generator is ``permuted_blocks``, drawn afresh for each replicate, and the derived parameters
come from the registry ``helpers.scores``. Vectorized here (the generator works row by row on dated records): the
draw of the switched participant and of missed visits.

What is simplified, and why it does not change the analysed numbers:

* the analysis datasets are built directly (ADSL: ``USUBJID, TRT01P, EOSSTT``; ADTTE: ``USUBJID, TRT01P,
  PARAMCD, AVAL, CNSR, EVNTDESC``; ADLB of the endpoints tested by MMRM: ``USUBJID, TRT01P, PARAMCD, AVISIT, AVISITN,
  AVAL, BASE, CHG``, one record per visit), not through the CSV export, validation and the ADaM derivation:
  these are the columns the three analyses read, derived by the same rules (times from randomization, the
  horizon, the events and censoring events of the trial file's time-to-event endpoint, completion, baseline and
  change);
* no dates, screening log, identities, adverse events or dosing records (nothing analysed here reads
  them); accrual changes no analysed number at the final analysis (every time is counted from
  randomization), so calendar time is not simulated and a data cut-off in the trial file is ignored: the
  design is evaluated at the final analysis;
* unscheduled and repeated samples and results below a limit (quirks of the realistic export) are left
  out: the analyses use the record nearest each visit's target day, and censored results concern only the
  lowest result of a few tests;
* event times are drawn independently for each participant. The synthetic cohort generator spreads death times
  over stratified uniforms so that one cohort's death count stays near the assumed rate; a real trial's
  death count varies binomially, and that variation is what operating characteristics are about
  (``stratified_deaths=True`` restores the generator's rule);
* an effect on a derived parameter (the registry's, ``helpers.scores``) is added to its value, ramping in as the
  generator's lab effects do (so the score is no longer a whole number; the MMRM treats it as continuous),
  and an effect on a lab endpoint goes through the lab model as in the generator.

The truth each estimate is compared with is the estimand's value in the simulated population, under the
intention-to-treat rule the analyses follow (arms as randomized): the difference in event-free survival at the
horizon with no intercurrent event and no withdrawal (the hypothetical strategy of the survival chapter), from
the hazard model by Gauss-Hermite quadrature, or a continuous primary endpoint's effect at its visit, and the key
secondary effect; each diluted by the occasional participant who receives the other arm.

Replicates run in parallel through joblib (``n_jobs``), or on a Dask distributed cluster (``scheduler``
"tcp://host:port", or the ``DASK_SCHEDULER`` environment variable). Replicate i is seeded by the i-th child
of ``numpy.random.SeedSequence(seed)``, the same in every scenario (common random numbers), so results do not
depend on the number of workers, on the chunking, nor on where they run.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from helpers.analysis import findings, outcomes, survival
from helpers import cache, paths, scores
from helpers.data import simulation
from helpers.data.randomization import permuted_blocks
from helpers.data.simulation import CELL_MISSING_RATE, SWITCH_PROBABILITY
from helpers.trial import Trial

PRIMARY, KEY = "primary", "key secondary"
ANALYSES = (PRIMARY, KEY)
POWER_TARGET = 0.80
DEFAULT_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)  # scenario k: hazard ratio 1 - s_k (or a continuous primary's effect
# s_k x SD of its change), key effect s_k x SD of the change
_GH_NODES = 60


@dataclass(frozen=True)
class Scenario:
    """One truth, for every experimental arm (as received): the hazard ratio of the primary time-to-event endpoint's
    events, the shift of the key secondary endpoint's change at the last visit, and the shift of a continuous primary
    endpoint's change at the primary visit (both on their analysis scale)."""
    hazard_ratio: float = 1.0
    key_effect: float = 0.0
    name: str = ""
    primary_effect: float = 0.0

    @property
    def is_null(self) -> bool:
        return self.hazard_ratio == 1.0 and self.key_effect == 0.0 and self.primary_effect == 0.0


# ------------------------------------------------------------------ the trial as designed

ASSUMPTION_NAMES = {"death_rate_24w": "mortality by the horizon without treatment effect",
                    "withdrawal_rate": "withdrawal rate", "missed_visit_rate": "missed-visit rate", "seed": "seed"}


def assumption(trial: Trial, key: str):
    """A simulation assumption: the trial file's ``simulation.<key>``, else the book's stated default."""
    return getattr(trial.simulation, key)


def defaulted_assumptions(trial: Trial) -> list[str]:
    """The design's assumptions the trial file does not state (so the book's defaults are used)."""
    return [k for k in ASSUMPTION_NAMES if k not in trial.simulation.stated]


def assumed_models(trial: Trial) -> list[str]:
    """The parts of the disease model the book assumed for want of the trial file's (``simulation.assumed_models``)."""
    return simulation.assumed_models(trial)


def design_trial(trial: Trial) -> Trial:
    """The trial at its final analysis (a data cut-off in the trial file is not part of the design)."""
    return dataclasses.replace(trial, cutoff=None)


def is_continuous(trial: Trial) -> bool:
    """Whether the primary endpoint is continuous (tested by the MMRM contrast at its visit) rather than time to
    event."""
    return not trial.primary_endpoint.is_time_to_event


def _check(trial: Trial) -> None:
    if trial.strata:
        raise NotImplementedError(f"{trial.id}: stratified randomization is not simulated (as in the cohort generator)")
    for code, role in zip(findings.mmrm_codes(trial), ("primary" if is_continuous(trial) else "key secondary",
                                                      "key secondary")):
        e = trial.endpoint(code)
        if e.source == "derived" and e.code not in trial.derived_scores:
            raise ValueError(f"{trial.id}: {role} endpoint {e.code} cannot be derived from the lab panel")


@functools.lru_cache(maxsize=64)
def _subject_ids(study: str, n: int) -> np.ndarray:
    return np.array([f"{study}-01-{k:03d}" for k in range(1, n + 1)], dtype=object)


def _primary_events(trial: Trial) -> tuple[str, ...]:
    """The event types that count as events of the primary time-to-event endpoint (the trial file's time_to_event);
    none for a continuous primary endpoint (the scenario's hazard ratio then acts on nothing)."""
    return () if is_continuous(trial) else trial.lead_tte.events


def _people(trial: Trial, scenario: Scenario, rng: np.random.Generator, n: int,
            stratified_deaths: bool) -> dict[str, np.ndarray]:
    """Per participant: arm allocated and received, severity, baseline categories, delay to day 1, how and when
    follow-up ended (study day) and which follow-up visits were attended, by the cohort generator's public rules
    (``simulation.draw_baseline``, ``day1_delays``, ``visit_days``, ``event_hazards``, ``end_of_follow_up``); the
    scenario's hazard ratio multiplies the hazards of the primary endpoint's events on an experimental arm."""
    arms = trial.arm_codes
    ratios = [a.ratio for a in trial.arms]
    allocated = permuted_blocks(arms, ratios, trial.block_sizes, n, rng)["arm"].to_numpy(dtype=object)[:n]
    baseline = simulation.draw_baseline(trial, rng, n)
    received = allocated.copy()
    switch, k = rng.random() < SWITCH_PROBABILITY, int(rng.integers(n))
    if switch:
        received[k] = arms[(arms.index(received[k]) + 1) % len(arms)]
    severity = rng.normal(size=n)
    delay = simulation.day1_delays(trial, rng, n)
    followup = trial.followup_visits
    days = np.column_stack([simulation.visit_days(v, rng, n) for v in followup])

    hr = np.where(received != trial.control_arm, scenario.hazard_ratio, 1.0)
    rates = simulation.event_hazards(trial, severity, dict.fromkeys(_primary_events(trial), hr))
    uniforms = simulation.event_uniforms(rng, n, rates.shape[1], stratified_deaths)
    last = int(np.argmax([v.week for v in followup]))
    end, end_day = simulation.end_of_follow_up(trial, rates, uniforms, days[:, last].astype(float))
    missed = rng.random((n, len(followup))) < float(assumption(trial, "missed_visit_rate"))
    completed = (end == "COMPLETED")[:, None]
    attended = ~missed & ((days < end_day[:, None]) | (completed & (days <= end_day[:, None])))
    return {"allocated": allocated, "received": received, "severity": severity, "baseline": baseline,
            "delay": delay, "end": end, "end_day": end_day, "attended": attended}


def _analysis_times(trial: Trial, p: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ADSL (disposition) and the ADTTE record of the lead time-to-event endpoint (empty without one), by the trial
    file's time-to-event rule: time from randomization (day 1) to the first of its events, else censored at an
    intercurrent event or last contact, administratively at the horizon."""
    n = len(p["end"])
    ids = _subject_ids(trial.id, n)
    arm = pd.Series(p["allocated"]).map(trial.arm_labels).to_numpy(dtype=object)
    adsl = pd.DataFrame({"USUBJID": ids, "TRT01P": arm,
                         "EOSSTT": np.where(p["end"] == "COMPLETED", "COMPLETED", "DISCONTINUED")})
    if not trial.time_to_event:
        return adsl, pd.DataFrame(columns=["USUBJID", "TRT01P", "PARAMCD", "AVAL", "CNSR", "EVNTDESC"])
    h = trial.horizon_days
    tte = trial.lead_tte
    aval = p["delay"] + p["end_day"]
    event = np.isin(p["end"], tte.events)
    beyond = aval > h
    desc = np.full(n, "LAST KNOWN ALIVE", dtype=object)
    for code in tte.censors:
        desc[p["end"] == code] = trial.event_label(code).upper()
    desc = np.where(event, p["end"], desc)
    adtte = pd.DataFrame({"USUBJID": ids, "TRT01P": arm, "PARAMCD": tte.code,
                          "AVAL": np.minimum(aval, h).astype(int), "CNSR": np.where(event & ~beyond, 0, 1),
                          "EVNTDESC": np.where(beyond, "ALIVE AT HORIZON", desc)})
    return adsl, adtte


def _derived_values(trial: Trial, code: str, value: dict, grades: dict, shape: tuple[int, int]) -> np.ndarray:
    """Derived parameter ``code`` (the registry's) on participants x visits, from lab values (by panel column) in the
    panel's units, clinical grades (by column) and participant variables (AGE, SEX: one per participant), as ADLB
    derives it; a grade the registry does not require (e.g. a flag whose absence means "N") may be left out when the
    simulation section models no clinical file."""
    p = trial.derived(code)
    missing = [v for v in p.participant if v not in grades] + [g.column for g in p.grades
                                                                if g.required and g.column not in grades]
    if missing:
        raise NotImplementedError(f"no simulation model for derived endpoint {code}: the design does not simulate "
                                  f"{', '.join(missing)}")
    frame = pd.DataFrame({c: value[trial.lab(c).column].ravel() * f for c, f in trial.component_factors(code).items()})
    for g in p.grades:
        frame[g.column] = np.asarray(grades[g.column]).ravel() if g.column in grades else None
    for v in p.participant:
        frame[v] = np.repeat(np.asarray(grades[v]), shape[1])
    return scores.derive(p, frame).to_numpy().reshape(shape)


def analysis_visits(trial: Trial) -> dict:
    """The visit of each endpoint the plan tests by MMRM (``findings.mmrm_codes``), by code: a continuous primary
    endpoint's primary visit, the key secondary endpoint's last visit."""
    visits = {trial.key_secondary: trial.last_visit} if trial.key_secondary is not None else {}
    if is_continuous(trial):
        visits = {trial.primary_endpoint.code: trial.primary_visit} | visits
    return visits


def scenario_effects(trial: Trial, scenario: Scenario) -> dict[str, float]:
    """The full effect (reached at the last follow-up week, ``simulation.effect_ramp``) on each endpoint the plan
    tests by MMRM, by code, such that the effect at its analysis visit (``analysis_visits``) is the scenario's: a
    continuous primary endpoint's ``primary_effect``, the key secondary endpoint's ``key_effect``."""
    ramp = dict(zip((v.code for v in trial.visits), simulation.effect_ramp(trial)))
    effect = {trial.key_secondary: scenario.key_effect, trial.primary_endpoint.code: scenario.primary_effect}
    return {code: effect[code] / ramp[v.code] for code, v in analysis_visits(trial).items()}


def _mmrm_values(trial: Trial, scenario: Scenario, p: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The endpoints tested by MMRM (``scenario_effects``) at every visit (participants x visits) as the export and
    ADaM would give them: the generator's lab values and clinical file (``simulation.simulate_lab_values``,
    ``simulate_clinical_values``), labs rounded to the panel's decimals, cells missing at random, derived parameters
    from the registry ``helpers.scores`` (``_derived_values``)."""
    effects = scenario_effects(trial, scenario)
    endpoints = [trial.endpoint(code) for code in effects]
    experimental = [a.code for a in trial.experimental_arms]
    lab = {e.code: effects[e.code] for e in endpoints if e.source == "lab"}
    lab_effects = {a: dict(lab) for a in experimental} if lab else {}
    people = pd.DataFrame({"severity": p["severity"], "arm_received": p["received"], **p["baseline"]})
    labs = simulation.simulate_lab_values(trial, people, rng, lab_effects)
    n, nv = len(people), len(trial.visits)
    clinical = simulation.simulate_clinical_values(trial, p["severity"], labs, rng)
    flags = {f.column for f in trial.simulation.clinical.flags} if trial.simulation.clinical else set()
    grades = {c: np.where(x, "Y", "N") if c in flags else x for c, x in clinical.items()}
    missing = rng.random((n, nv, len(labs))) < CELL_MISSING_RATE
    decimals = {t.column: t.decimals for t in trial.lab_panel}
    value = {c: np.where(missing[:, :, j], np.nan, np.round(labs[c], decimals.get(c, 2)))
             for j, c in enumerate(labs)}
    derived = [e for e in endpoints if e.source != "lab"]
    if any(trial.derived(e.code).participant for e in derived):  # drawn last: the other draws stay any endpoint's
        grades |= simulation.draw_demographics(trial, rng, n)
    treated = (p["received"] != trial.control_arm)[:, None]
    out = {}
    for e in endpoints:
        if e.source == "lab":
            out[e.code] = value[trial.lab(e.code).column]
        else:
            y = _derived_values(trial, e.code, value, grades, (n, nv))
            out[e.code] = (np.asarray(y, dtype=float)
                           + effects[e.code] * simulation.effect_ramp(trial)[None, :] * treated)
    return out


def _endpoint_adlb(trial: Trial, p: dict, code: str, y: np.ndarray) -> pd.DataFrame:
    """ADLB records of one endpoint (one per attended visit with a value), with BASE and CHG."""
    n = len(p["end"])
    base_j = next(j for j, v in enumerate(trial.visits) if v.is_baseline)
    follow_j = [j for j, v in enumerate(trial.visits) if not v.is_baseline]
    attended = np.ones((n, len(trial.visits)), dtype=bool)
    attended[:, follow_j] = p["attended"]
    keep = attended & ~np.isnan(y)
    i, j = np.nonzero(keep)
    base = y[:, base_j]
    aval = y[i, j]
    post = j != base_j
    labels = np.array([v.label for v in trial.visits], dtype=object)
    weeks = np.array([v.week for v in trial.visits])
    arm = pd.Series(p["allocated"]).map(trial.arm_labels).to_numpy(dtype=object)
    return pd.DataFrame({"USUBJID": _subject_ids(trial.id, n)[i], "TRT01P": arm[i], "PARAMCD": code,
                         "AVISIT": labels[j], "AVISITN": weeks[j], "AVAL": aval, "BASE": base[i],
                         "CHG": np.where(post, aval - base[i], np.nan)})


def simulate_cohort(trial: Trial, scenario: Scenario, rng: np.random.Generator, n: int | None = None,
                    stratified_deaths: bool = False) -> dict[str, pd.DataFrame]:
    """One simulated trial's analysis data: ``adsl``, ``adtte`` (the lead time-to-event endpoint: the primary one,
    else the trial file's first; empty without one), ``adlb`` (the endpoints tested by MMRM: a continuous primary
    endpoint and the key secondary endpoint; empty without one), with the columns the book's primary and key
    secondary analyses read."""
    trial = design_trial(trial)
    _check(trial)
    n = trial.planned_n if n is None else int(n)
    p = _people(trial, scenario, rng, n, stratified_deaths)
    adsl, adtte = _analysis_times(trial, p)
    if not scenario_effects(trial, scenario):
        return {"adsl": adsl, "adtte": adtte, "adlb": pd.DataFrame(columns=["USUBJID", "TRT01P", "PARAMCD"])}
    values = _mmrm_values(trial, scenario, p, rng)
    adlb = pd.concat([_endpoint_adlb(trial, p, code, y) for code, y in values.items()], ignore_index=True)
    return {"adsl": adsl, "adtte": adtte, "adlb": adlb}


# ------------------------------------------------------------------ the book's analyses of one replicate

def _primary_p(trial: Trial, adtte: pd.DataFrame, adsl: pd.DataFrame) -> float:
    """The p-value of the registered primary test, from the survival chapter's helper (first experimental arm)."""
    code = trial.primary_endpoint.code
    if trial.primary_test == "fisher":
        return float(survival.fisher_survivors(adtte, adsl, trial, code)["PVALUE"].iloc[0])
    if trial.primary_test == "logrank":
        return float(survival.logrank(adtte, trial, code)["PVALUE"])
    return float(survival.cox_hr(adtte, trial, code)["PVALUE"].iloc[0])


def _mmrm_columns(trial: Trial, r: pd.Series | None, code: str, prefix: str) -> dict:
    """An MMRM contrast (``findings.mmrm_row``) as the replicate's columns ``<prefix>_estimate/_se/_lower/_upper/
    _df/_p/_n/_covariance``, on the analysis scale (log for ``log: true`` endpoints)."""
    r = pd.Series(dtype=object) if r is None else r
    scale = np.log if trial.endpoint(code).log else (lambda x: x)

    def num(col, f=float):
        return float(f(r[col])) if col in r and pd.notna(r[col]) else np.nan

    return {f"{prefix}_estimate": num("estimate", scale), f"{prefix}_se": num("se"),
            f"{prefix}_lower": num("lower", scale), f"{prefix}_upper": num("upper", scale), f"{prefix}_df": num("df"),
            f"{prefix}_p": num("p_value"), f"{prefix}_n": num("n"),
            f"{prefix}_covariance": str(r.get("covariance", "not estimable"))}


def analyse_cohort(trial: Trial, data: dict[str, pd.DataFrame], analyses=ANALYSES) -> dict:
    """The book's confirmatory analyses of one (simulated) trial: the primary test and estimate (time to event: the
    plan's primary test and the difference in event-free survival at the horizon; continuous: the MMRM contrast at
    the primary visit), the key secondary MMRM at the last visit, and the fixed-sequence decisions
    (``findings.decisions``)."""
    trial = design_trial(trial)
    adsl, adtte, adlb = data["adsl"], data["adtte"], data["adlb"]
    code = trial.primary_endpoint.code
    row = {}
    p1 = np.nan
    surv = pd.DataFrame(columns=["PARAMCD", "ANALYSIS", "PVALUE"])
    if PRIMARY in analyses and not is_continuous(trial):
        p1 = _primary_p(trial, adtte, adsl)
        at = survival.survival_at_horizon(adtte, trial, code)
        diff = at[at["STATISTIC"] == "difference"].iloc[0]
        row |= {"deaths": int((adtte["CNSR"] == 0).sum()), "primary_estimate": float(diff["ESTIMATE"]),
                "primary_se": float(diff["SE"]), "primary_lower": float(diff["LCL"]),
                "primary_upper": float(diff["UCL"])}
        surv = pd.DataFrame({"PARAMCD": [code], "ANALYSIS": [findings.PRIMARY_ANALYSIS[trial.primary_test]],
                             "PVALUE": [p1]})
    fitted = ([code] if PRIMARY in analyses and is_continuous(trial) else []) + \
        ([trial.key_secondary] if KEY in analyses and trial.key_secondary is not None else [])
    mmrm = pd.DataFrame(columns=outcomes.MODEL_COLUMNS)
    if fitted:
        mmrm = outcomes.mmrm_table(adlb, trial, adsl, codes=fitted)
    if PRIMARY in analyses and is_continuous(trial):
        primary = _mmrm_columns(trial, findings.primary_row(mmrm, trial), code, "primary")
        p1 = primary.pop("primary_p")
        row |= primary
    if KEY in analyses and trial.key_secondary is not None:
        row |= _mmrm_columns(trial, findings.key_secondary_row(mmrm, trial), trial.key_secondary, "key")
    ds = findings.decisions(surv, mmrm, trial)
    row |= {"primary_p": p1, "primary_outcome": ds[0].outcome}
    if len(ds) > 1:
        row["key_outcome"] = ds[1].outcome
    return row


def _replicate(trial: Trial, scenario: Scenario, seed: np.random.SeedSequence, n: int, analyses,
               stratified_deaths: bool) -> dict:
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny replicates routinely hit edge cases (an arm without deaths)
        return analyse_cohort(trial, simulate_cohort(trial, scenario, rng, n, stratified_deaths), analyses)


def _run_chunk(trial: Trial, scenario_index: int, scenario: Scenario, seeds: list[tuple[int, np.random.SeedSequence]],
               n: int, analyses: tuple, stratified_deaths: bool) -> list[dict]:
    """One task: a few replicates of one scenario (module-level, so joblib and Dask workers can import it)."""
    return [{"scenario": scenario_index, "replicate": i}
            | _replicate(trial, scenario, s, n, analyses, stratified_deaths) for i, s in seeds]


# ------------------------------------------------------------------ truth

def event_probability(trial: Trial, hazard_ratio: float) -> float:
    """P(an event of the primary endpoint by the horizon) with no intercurrent event and no withdrawal, for a
    participant receiving an arm with this hazard ratio: 1 - E exp(-sum_k rate_k x HR x exp(b_k z) x (horizon -
    delay)) over the endpoint's event types k (``simulation.hazard_parameters``), z ~ N(0, 1) by Gauss-Hermite, the
    delay from randomization to day 1 averaged (events count from randomization). For overall survival: death."""
    h = float(trial.horizon_days)
    parameters = simulation.hazard_parameters(trial)
    terms = [(simulation.hazard_scale(*parameters[code], h), parameters[code][1]) for code in _primary_events(trial)]
    z, w = np.polynomial.hermite_e.hermegauss(_GH_NODES)
    w = w / w.sum()
    delays = np.arange(simulation.MAX_DELAY_DAYS + 1) if trial.has_dosing_file else np.array([0])
    surv = [np.sum(w * np.exp(-sum(base * hazard_ratio * np.exp(loading * z) for base, loading in terms) * (h - d)))
            for d in delays]
    return float(1 - np.mean(surv))


death_probability = event_probability


def _treated_share(trial: Trial, n: int) -> dict[str, float]:
    """For each arm as randomized: the expected share of its participants who receive an experimental arm (in half
    of the cohorts one participant of n receives the next arm of the trial file instead of the allocated one)."""
    arms = trial.arm_codes
    q = SWITCH_PROBABILITY / n
    treated = {a: float(a != trial.control_arm) for a in arms}
    return {a: (1 - q) * treated[a] + q * treated[arms[(i + 1) % len(arms)]] for i, a in enumerate(arms)}


def true_values(trial: Trial, scenario: Scenario, n: int | None = None) -> dict[str, float]:
    """The estimands' values under a scenario, as randomized (first experimental arm vs control): the primary
    endpoint's event probabilities at the horizon per arm and the difference in event-free survival at the horizon
    (time to event; for a continuous primary endpoint the event probabilities are nan and the primary truth is its
    effect at the primary visit), the key secondary effect."""
    trial = design_trial(trial)
    n = trial.planned_n if n is None else int(n)
    control, first = trial.control_arm, trial.experimental_arms[0].code
    share = _treated_share(trial, n)
    dilution = share[first] - share[control]
    if is_continuous(trial):
        return {"death_control": np.nan, "death_experimental": np.nan,
                "primary_truth": scenario.primary_effect * dilution, "key_truth": scenario.key_effect * dilution}
    p_treated, p_untreated = event_probability(trial, scenario.hazard_ratio), event_probability(trial, 1.0)
    d_exp = share[first] * p_treated + (1 - share[first]) * p_untreated
    d_ctl = share[control] * p_treated + (1 - share[control]) * p_untreated
    return {"death_control": d_ctl, "death_experimental": d_exp, "primary_truth": d_ctl - d_exp,
            "key_truth": scenario.key_effect * dilution}


# ------------------------------------------------------------------ scenarios

@functools.lru_cache(maxsize=16)
def change_sds(trial: Trial, n: int = 20000, seed: int = 0) -> dict[str, float]:
    """SD of the change from baseline under the null (analysis scale) of each endpoint tested by MMRM, from one large
    simulated cohort: a continuous primary endpoint's to the primary visit, the key secondary endpoint's to the last
    visit; the units of the default grid of effects."""
    trial = design_trial(trial)
    d = simulate_cohort(trial, Scenario(), np.random.default_rng(seed), n)["adlb"]
    out = {}
    for code, visit in analysis_visits(trial).items():
        x = d[(d["PARAMCD"] == code) & (d["AVISITN"] == visit.week)]
        chg = np.log(x["AVAL"]) - np.log(x["BASE"]) if trial.endpoint(code).log else x["CHG"]
        out[code] = float(np.nanstd(chg, ddof=1))
    return out


def key_change_sd(trial: Trial, n: int = 20000, seed: int = 0) -> float:
    """SD of the key secondary endpoint's change from baseline to the last visit under the null (``change_sds``)."""
    return change_sds(trial, n, seed)[trial.key_secondary]


def primary_change_sd(trial: Trial, n: int = 20000, seed: int = 0) -> float:
    """SD of a continuous primary endpoint's change from baseline to the primary visit under the null
    (``change_sds``)."""
    return change_sds(trial, n, seed)[trial.primary_endpoint.code]


def _round_sig(x: float, digits: int = 2) -> float:
    return 0.0 if x == 0 else round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _better_sign(trial: Trial, code: str | None) -> float:
    return -1.0 if code is not None and trial.endpoint(code).better == "lower" else 1.0


def default_scenarios(trial: Trial, steps=DEFAULT_STEPS) -> list[Scenario]:
    """The null and a ladder of alternatives, both effects growing together: scenario k has hazard ratio
    1 - s_k (a continuous primary endpoint: effect s_k SDs of its change to the primary visit, hazard ratio 1) and
    key secondary effect s_k SDs of its change (effects to two significant digits), in the direction the trial file
    calls better."""
    sd = key_change_sd(trial) if trial.key_secondary is not None else 0.0
    sign = _better_sign(trial, trial.key_secondary)
    if is_continuous(trial):
        sd1, sign1 = primary_change_sd(trial), _better_sign(trial, trial.primary_endpoint.code)
        return [Scenario(1.0, _round_sig(sign * s * sd), "null" if s == 0 else f"S{k}", _round_sig(sign1 * s * sd1))
                for k, s in enumerate(steps)]
    return [Scenario(round(1.0 - s, 4), _round_sig(sign * s * sd), "null" if s == 0 else f"S{k}")
            for k, s in enumerate(steps)]


# ------------------------------------------------------------------ running the replicates

def scheduler_address(scheduler: str | None = None) -> str | None:
    """The Dask scheduler to use: ``scheduler``, else $DASK_SCHEDULER, else None (run on this machine)."""
    return scheduler or os.environ.get("DASK_SCHEDULER") or None


def simulate_design(trial: Trial, scenarios: list[Scenario] | None = None, replicates: int = 200,
                    seed: int | None = None, n: int | None = None, n_jobs: int = -1, scheduler: str | None = None,
                    analyses=ANALYSES, chunk_size: int = 20, stratified_deaths: bool = False) -> pd.DataFrame:
    """Every replicate of every scenario, analysed as the book does: one row per scenario and replicate.

    ``seed`` (default: the trial file's simulation seed) seeds replicate i by the i-th child of
    ``SeedSequence(seed)`` in every scenario. ``n`` overrides ``planned_n`` (sample-size exploration).
    ``n_jobs`` joblib workers (-1: every core; 1: in this process); ``scheduler`` ("tcp://host:port", default
    ``$DASK_SCHEDULER``) sends the tasks to that Dask distributed cluster instead (its workers need this
    package installed). ``analyses`` may leave out the key secondary MMRM (``("primary",)``).

    Columns: scenario (index), name, hazard_ratio, primary_effect, key_effect, replicate, n, the truths
    (``true_values``), primary_p, primary_outcome, primary_estimate/_se/_lower/_upper (time to event: Kaplan-Meier
    difference in survival at the horizon, experimental minus control, and ``deaths``, the primary endpoint's events;
    continuous: the MMRM contrast at the primary visit, analysis scale, with primary_df/_n/_covariance),
    key_estimate/_se/_lower/_upper/_df/_p/_n/_covariance (MMRM at the last visit, analysis scale), key_outcome (fixed
    sequence: met, not met, not tested, not estimable).
    """
    trial = design_trial(trial)
    _check(trial)
    scenarios = default_scenarios(trial) if scenarios is None else list(scenarios)
    n = trial.planned_n if n is None else int(n)
    seed = assumption(trial, "seed") if seed is None else seed
    children = list(enumerate(np.random.SeedSequence(seed).spawn(replicates)))
    chunks = [children[k:k + chunk_size] for k in range(0, replicates, chunk_size)]
    tasks = [(trial, s, sc, chunk, n, tuple(analyses), stratified_deaths)
             for s, sc in enumerate(scenarios) for chunk in chunks]
    address = scheduler_address(scheduler)
    if address:
        from dask.distributed import Client

        with Client(address) as client:
            futures = client.map(_run_chunk, *zip(*tasks), pure=False)
            results = client.gather(futures)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs)(delayed(_run_chunk)(*t) for t in tasks)
    reps = pd.DataFrame([r for chunk in results for r in chunk]).sort_values(["scenario", "replicate"])
    info = pd.DataFrame([{"scenario": s, "name": sc.name or f"S{s}", "hazard_ratio": sc.hazard_ratio,
                          "primary_effect": sc.primary_effect, "key_effect": sc.key_effect, "n": n}
                         | true_values(trial, sc, n)
                         for s, sc in enumerate(scenarios)])
    return info.merge(reps, on="scenario").reset_index(drop=True)


# ------------------------------------------------------------------ operating characteristics

def required_n(n: float, empirical_se: float, truth: float, alpha: float, power: float = POWER_TARGET,
               multiple: int = 1) -> float:
    """Sample size for ``power`` of a two-sided level-``alpha`` Wald test of an effect ``truth`` whose estimate has
    standard deviation ``empirical_se`` at ``n`` participants: SE scales as 1/sqrt(N), so
    N = n (z_{1-alpha/2} + z_power)^2 SE^2 / truth^2, rounded up to a multiple of ``multiple`` (whole blocks);
    nan when the truth is 0 or the SE unknown."""
    if not truth or not np.isfinite(empirical_se) or empirical_se <= 0:
        return np.nan
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    need = n * (z * empirical_se / truth) ** 2
    return float(multiple * math.ceil(need / multiple))


def _wilson(k: int, m: int, level: float = 0.95) -> tuple[float, float]:
    if m == 0:
        return np.nan, np.nan
    from statsmodels.stats.proportion import proportion_confint

    return tuple(float(x) for x in proportion_confint(k, m, alpha=1 - level, method="wilson"))


def _estimate_summary(est, se, lo, hi, truth) -> dict:
    ok = np.isfinite(est)
    e, s = est[ok], se[ok]
    covered = (lo[ok] <= truth) & (truth <= hi[ok])
    return {"estimable": int(ok.sum()), "mean_estimate": float(np.mean(e)) if ok.any() else np.nan,
            "bias": float(np.mean(e) - truth) if ok.any() else np.nan,
            "mean_se": float(np.nanmean(s)) if ok.any() else np.nan,
            "empirical_se": float(np.std(e, ddof=1)) if ok.sum() > 1 else np.nan,
            "coverage": float(np.mean(covered)) if ok.any() else np.nan}


def operating_characteristics(reps: pd.DataFrame, trial: Trial, power: float = POWER_TARGET) -> pd.DataFrame:
    """Per scenario and endpoint (primary, key secondary): the rejection rate (power; type-I error under the null)
    with its Wilson 95% Monte Carlo interval, the fixed-sequence claim rate, bias of the estimate against the truth,
    mean model SE, empirical SE (SD of the estimates), 95% CI coverage, and the N for ``power`` (``required_n``
    from the empirical SE, in whole blocks)."""
    trial = design_trial(trial)
    block = min(trial.block_sizes)
    rows = []
    for s, d in reps.groupby("scenario", sort=True):
        first = d.iloc[0]
        base = {"scenario": s, "name": first["name"], "hazard_ratio": first["hazard_ratio"],
                "primary_effect": first.get("primary_effect", 0.0), "key_effect": first["key_effect"], "n": int(first["n"]), "replicates": len(d),
                "death_control": first["death_control"], "death_experimental": first["death_experimental"]}
        parts = []
        if "primary_estimate" in d:
            met = int((d["primary_outcome"] == findings.MET).sum())
            summary = _estimate_summary(*(d[f"primary_{c}"].to_numpy(float) for c in ("estimate", "se", "lower", "upper")),
                                        first["primary_truth"])
            if "primary_covariance" in d:
                summary["fallback"] = float((~d["primary_covariance"].isin(["us"])).mean())
            parts.append((PRIMARY, first["primary_truth"], met, met, d["primary_p"].isna().mean(), summary))
        if "key_estimate" in d:
            sig = int((d["key_p"] < trial.alpha).sum())
            claimed = int((d["key_outcome"] == findings.MET).sum())
            parts.append((KEY, first["key_truth"], sig, claimed, d["key_p"].isna().mean(),
                          _estimate_summary(*(d[f"key_{c}"].to_numpy(float) for c in ("estimate", "se", "lower", "upper")),
                                            first["key_truth"]) | {"fallback": float((~d["key_covariance"].isin(["us"])).mean())}))
        for endpoint, truth, rejected, claimed, not_estimable, summary in parts:
            lo, hi = _wilson(rejected, len(d))
            rows.append(base | {"endpoint": endpoint, "truth": truth, "power": rejected / len(d), "power_lower": lo,
                                "power_upper": hi, "claimed": claimed / len(d), "not_estimable": not_estimable}
                        | summary | {"n_for_power": required_n(base["n"], summary["empirical_se"], truth, trial.alpha,
                                                               power, block)})
    return pd.DataFrame(rows)


def is_null_row(oc: pd.DataFrame) -> pd.Series:
    """Per row of replicates or operating characteristics: whether it is of a null scenario (hazard ratio 1, no
    effect on the primary or the key secondary endpoint)."""
    primary = oc["primary_effect"] if "primary_effect" in oc else 0.0
    return (oc["hazard_ratio"] == 1.0) & (primary == 0.0) & (oc["key_effect"] == 0.0)


def null_scenario(oc: pd.DataFrame) -> pd.DataFrame:
    """The rows of the null scenario (``is_null_row``); empty when it was not simulated."""
    return oc[is_null_row(oc)]


def detectable_effect(oc: pd.DataFrame, trial: Trial, power: float = POWER_TARGET) -> dict[str, float]:
    """The smallest true effect the design detects with ``power`` (two-sided level alpha, Wald approximation), per
    endpoint: (z_{1-alpha/2} + z_power) x the empirical SE of its estimate under the null; nan without a null
    scenario. Primary: difference in survival at the horizon (time to event) or its effect on the analysis scale
    (continuous); key secondary: its effect on the analysis scale."""
    z = stats.norm.ppf(1 - trial.alpha / 2) + stats.norm.ppf(power)
    null = null_scenario(oc).set_index("endpoint")["empirical_se"]
    return {endpoint: float(z * null[endpoint]) if endpoint in null else np.nan for endpoint in ANALYSES}



# ------------------------------------------------------------------ results kept across builds

_NOT_DESIGN = ("cutoff", "source", "glossary", "export_mapping")  # where the data are, not what is designed
_CACHE_FORMAT = 1


def _canonical(value):
    """``value`` as JSON-ready data that is the same in every process (sets sorted; paths and dates as text)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, dict):
        return sorted(([_canonical(k), _canonical(v)] for k, v in value.items()), key=json.dumps)
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(v) for v in value), key=json.dumps)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def design_inputs(trial: Trial) -> dict:
    """The trial as the design sees it: every field of the trial file but the data cut-off and the places of the
    export, its mapping and the glossary, so that a new export or cut-off leaves the design's results as they are."""
    return _canonical(dataclasses.replace(design_trial(trial), **{k: None for k in _NOT_DESIGN}))


def design_sources() -> list[Path]:
    """The source files the design's simulation runs: this module and every ``helpers`` module it imports, directly
    or not (read from their import statements), with the packages' ``__init__`` and every score module (the
    registry loads them by name)."""
    root = Path(__file__).resolve().parents[1]

    def files(name: str) -> list[Path]:
        parts = name.split(".")[1:]
        found = [root.joinpath(*parts[:k], "__init__.py") for k in range(len(parts) + 1)]
        if parts:
            found.append(root.joinpath(*parts).with_suffix(".py"))
        return [f for f in found if f.is_file()]

    todo, seen = [Path(__file__).resolve(), *sorted((root / "scores").glob("*.py"))], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            todo += [f for name in names if name.split(".")[0] == "helpers" for f in files(name)]
    return sorted(seen)


def design_key(trial: Trial, replicates: int) -> str:
    """SHA-256 of what the design's results depend on: the trial as the design sees it (``design_inputs``), the
    number of replicates, the source of the code that simulates and analyses them (``design_sources``) and the
    versions of the numerical packages."""
    root = Path(__file__).resolve().parents[1]
    return cache.key({"format": _CACHE_FORMAT, "trial": design_inputs(trial), "replicates": int(replicates),
                      "sources": {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                                  for p in design_sources()}})


def design_results(trial: Trial, replicates: int, scheduler: str | None = None,
                   cache_dir: os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The design chapter's results: the replicates of the default scenarios (``simulate_design``) and their
    operating characteristics (``operating_characteristics``), read from ``cache_dir`` (default
    ``paths.DESIGN_CACHE``) when they were computed before for the same ``design_key``. They depend only on the
    trial file and the design's code, so a new export or cut-off reuses them; an entry that cannot be read is
    computed again. ``scheduler`` as in ``simulate_design`` (it does not change the results)."""
    path = Path(paths.DESIGN_CACHE if cache_dir is None else cache_dir) / f"{design_key(trial, replicates)}.pickle"
    cached = cache.read(path, lambda v: isinstance(v, tuple) and len(v) == 2
                        and all(isinstance(part, pd.DataFrame) for part in v))
    if cached is not None:
        return cached
    reps = simulate_design(trial, default_scenarios(trial), replicates=replicates, scheduler=scheduler)
    result = (reps, operating_characteristics(reps, trial))
    try:
        cache.write(path, result)
    except OSError as e:
        warnings.warn(f"design results not kept in {path.parent}: {e}", RuntimeWarning, stacklevel=2)
    return result
