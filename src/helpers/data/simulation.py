"""A synthetic site export for a trial: the files of export_schema.yaml, as the site would send them.

The cohort is driven by the trial file (arms, ratios, block sizes, visits and windows, planned n,
accrual) and its ``simulation`` block (seed, screening ratio, death, withdrawal and missed-visit
rates, treatment effects). Everything is drawn from one ``numpy`` generator and one seeded
``Faker("zh_CN")``, so a seed gives the same files byte for byte.

Rules fixed here rather than in the trial file:

* infusions per participant: ``simulation.infusions_per_arm[arm]`` if given, else 2 for an arm
  coded ``DOUBLE`` (the second 4 weeks after the first) and 1 otherwise;
* route-specific adverse events (puncture-site haematoma, post-embolization-like pain) for an
  arm coded ``HA`` (hepatic artery);
* one latent severity per participant drives the baseline labs, ascites, encephalopathy, the AE
  rate and the hazards of death and transplant;
* treatment effects act on the arm actually received and ramp in linearly (full at the last
  follow-up week); lab values follow a random intercept plus a serially correlated residual;
* the files follow the trial file: one labs column per test of its ``lab_panel`` (rounded to the
  test's decimals; bilirubin, albumin, INR, creatinine and sodium are simulated whether or not the
  panel carries them, since PT, grades and dialysis depend on them), one screening flag per
  ``eligibility`` criterion, and no infusion file when ``treatment.start`` is ``randomization``
  (study day 1 is then the randomization date).

``realistic=True`` (the default) then adds, from a second generator seeded from the seed (so the
clean part is unchanged), the quirks real exports contain and the loader accepts:

* about 2.5% of lab cells missing, never a whole row: mostly empty, some ``ND``, a few ``HEMOLYZED``;
* one or two clinical grades written ``ND``;
* the lowest ALT, AST and ALP result (those in the panel) reported below a limit, e.g. ``<10``;
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
import datetime as dt
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from faker import Faker
from faker.providers.ssn.zh_CN import Provider as _ZhSsn

from helpers.data.randomization import allocation_list, has_allocation_list
from helpers.data.schema import FileSpec, export_spec
from helpers.trial import SIMULATION_DEFAULTS, Trial

SITE_NUMBER = 1

# Relative frequency of screen-failure reasons (others 1): age above the range, an inclusion criterion
# not met (consent declined 3), and some exclusion flags by column name.
_AGE_HIGH, _AGE_LOW = ">age", "<age"
_FAILURE_WEIGHTS = {_AGE_HIGH: 1.5, "inclusion": 4, "consent": 3, "tumour": 4, "hcc": 4, "other_unsuitable": 2,
                    "serious_cardiopulmonary": 2, "life_limiting_disease": 2}
_PREGNANT = "pregnant_or_breastfeeding"
ETIOLOGIES = {"HBV": 0.55, "Alcohol": 0.15, "HCV": 0.06, "Autoimmune": 0.05, "PBC": 0.05,
              "Cryptogenic": 0.08, "Other": 0.06}

# Lab model, per analysis scale (log for log labs): population median at baseline, loading on the
# latent severity, random-intercept SD, residual SD, common change by the last week, clip range.
_LABS = {
    "tbil": dict(log=True, mid=60.0, sev=0.70, u=0.30, e=0.22, trend=-0.05, lo=3.0, hi=900.0),
    "alb": dict(log=False, mid=29.5, sev=-3.2, u=2.0, e=1.6, trend=0.5, lo=15.0, hi=50.0),
    "inr": dict(log=True, mid=1.6, sev=0.15, u=0.06, e=0.05, trend=-0.02, lo=0.9, hi=5.0),
    "alt": dict(log=True, mid=50.0, sev=0.15, u=0.45, e=0.30, trend=-0.05, lo=5.0, hi=3000.0),
    "ast": dict(log=True, mid=80.0, sev=0.20, u=0.40, e=0.28, trend=-0.05, lo=8.0, hi=3000.0),
    "alp": dict(log=True, mid=130.0, sev=0.10, u=0.35, e=0.20, trend=0.0, lo=30.0, hi=2000.0),
    "creat": dict(log=True, mid=80.0, sev=0.20, u=0.28, e=0.12, trend=0.0, lo=35.0, hi=900.0),
    "sodium": dict(log=False, mid=135.0, sev=-2.2, u=2.0, e=1.8, trend=0.0, lo=118.0, hi=146.0),
}
_MODELLED = set(_LABS) | {"pt"}
_RESIDUAL_WEEKS = 12.0  # correlation of residuals decays as exp(-|weeks apart| / 12)

_INFUSION_AES = {"fever": 3.0, "fatigue": 1.5, "nausea": 1.0, "rash": 0.6, "headache": 0.6}
_ROUTE_AES = {"puncture-site haematoma": 0.25, "post-embolization-like pain": 0.35}
# term: (weight, probability serious)
_DISEASE_AES = {"abdominal pain": (1.2, 0.05), "diarrhoea": (1.0, 0.02), "infection": (0.8, 0.3),
                "gastrointestinal bleeding": (0.5, 0.8), "worsening ascites": (0.9, 0.2),
                "hepatic encephalopathy": (0.6, 0.4), "hepatorenal syndrome": (0.25, 0.8),
                "spontaneous bacterial peritonitis": (0.3, 0.7), "pruritus": (0.5, 0.0), "insomnia": (0.4, 0.0)}
_DEATH_CAUSES = {"liver failure": 0.4, "gastrointestinal bleeding": 0.2, "hepatorenal syndrome": 0.15,
                 "sepsis": 0.15, "hepatic encephalopathy": 0.1}
_WITHDRAWAL_TERMS = {"withdrew consent": 0.5, "lost to follow-up": 0.3, "physician decision": 0.2}
_TRANSPLANT_RATE_24W = 0.03


@lru_cache(maxsize=1)
def _faker() -> Faker:
    """One zh_CN Faker per process (building it is slow); every use reseeds it first."""
    return Faker("zh_CN")


def _choice(rng: np.random.Generator, weights: dict, size=None):
    """Keys of ``weights`` drawn with probability proportional to the values."""
    keys = list(weights)
    p = np.array([weights[k] if np.isscalar(weights[k]) else weights[k][0] for k in keys], dtype=float)
    idx = rng.choice(len(keys), size=size, p=p / p.sum())
    return keys[idx] if size is None else [keys[i] for i in idx]


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


def _hazard_scale(target: float, beta: float, days: float) -> float:
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


def _check_effects(trial: Trial, effects: dict) -> dict:
    """Effects as {arm: {code: value}}; unknown arms or endpoints raise instead of being ignored."""
    lab_codes = {e.code for e in trial.lab_endpoints}
    for arm, eff in effects.items():
        if arm not in trial.arm_codes or arm == trial.control_arm:
            raise ValueError(f"effects: {arm!r} is not a non-control arm of {trial.id} ({trial.arm_codes})")
        bad = [k for k in eff if k not in lab_codes and k != "OS_HR"]
        if bad:
            raise ValueError(f"effects[{arm!r}]: {bad} are not lab endpoints of {trial.id} nor OS_HR")
    return {arm: dict(eff) for arm, eff in effects.items()}


def _failure_weights(trial: Trial) -> dict[str, float]:
    """Screen-failure reasons in a fixed order (age below, above the range; then each criterion's column), with weights."""
    out = {_AGE_LOW: 1.0, _AGE_HIGH: _FAILURE_WEIGHTS[_AGE_HIGH]} if trial.age_range else {}
    for c in trial.eligibility:
        kind = "consent" if c.consent else c.kind if c.kind == "inclusion" else c.column
        out[c.column] = float(_FAILURE_WEIGHTS.get(kind, 1.0))
    return out


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
    all_reasons = list(weights)
    n_fail = max(int(round(sim.screened_per_randomized * n_rand)) - n_rand, len(all_reasons))
    n = n_rand + n_fail
    reasons = list(rng.permutation(np.array(all_reasons, dtype=object)))
    reasons += _choice(rng, weights, n_fail - len(all_reasons))
    exclusions = [c.column for c in trial.eligibility if c.kind == "exclusion"]
    second = {r: 1.0 for r in exclusions if r != _PREGNANT}
    failures = [{r} | ({_choice(rng, second)} if rng.random() < 0.12 else set()) for r in reasons]
    failures += [set() for _ in range(n_rand)]
    failures = [failures[i] for i in rng.permutation(n)]

    start = trial.accrual_start or DEFAULT_ACCRUAL_START
    days = (_add_months(start, trial.accrual_months) - start).days
    screen_dates = sorted(start + dt.timedelta(days=int(d)) for d in rng.integers(0, max(days - 14, 1), n))

    area_codes = [a for a in _ZhSsn.area_codes if not a.endswith("00")]
    liaoning = [a for a in area_codes if a.startswith("21")]
    lo, hi = trial.age_range or (18, 80)
    rows = []
    for i, (fail, sdate) in enumerate(zip(failures, screen_dates)):
        pregnant = _PREGNANT in fail
        sex = "F" if pregnant or rng.random() < 0.3 else "M"
        if _AGE_LOW in fail:
            age = rng.uniform(lo - 1.9, lo - 0.1)
        elif _AGE_HIGH in fail:
            age = rng.uniform(hi + 1.1, hi + 8.0)
        elif pregnant:
            age = rng.uniform(22.0, 44.0)
        else:
            age = float(np.clip(rng.normal(54.0, 11.0), lo + 1.0, hi - 0.5))
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
            "etiology": _choice(rng, ETIOLOGIES),
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


def simulate_participants(trial: Trial, screening: pd.DataFrame, randomization: pd.DataFrame,
                          rng: np.random.Generator, effects: dict) -> pd.DataFrame:
    """Per-participant hidden state: severity, arm received, study day 1, visit days and how follow-up ends.

    Study day 1 (``first_infusion``) is the first infusion, 0-3 days after randomization, or the
    randomization date itself when the trial's ``treatment.start`` is ``randomization``.

    Death and transplant hazards rise with severity (death calibrated to ``death_rate_24w``, the
    arm's ``OS_HR`` multiplying it); withdrawal has a constant hazard (``withdrawal_rate``). Death
    times use stratified uniforms (one per n-tile, shuffled), so each cohort's death count stays
    near the assumed rate instead of varying binomially. Follow-up
    ends at the first of these or at the last scheduled visit (completion). One participant at most
    (half of the cohorts) receives another arm than allocated.
    """
    sim = trial.simulation
    n = len(randomization)
    arms = trial.arm_codes
    received = randomization["arm"].to_numpy(dtype=object).copy()
    if n and rng.random() < 0.5:
        k = int(rng.integers(n))
        received[k] = arms[(arms.index(received[k]) + 1) % len(arms)]
    severity = rng.normal(size=n)
    delay = rng.integers(0, 4, n) * trial.has_dosing_file
    first_inf = [d + dt.timedelta(days=int(k)) for d, k in zip(randomization["rand_date"], delay)]

    days = {}
    for v in trial.visits:
        lo, hi = v.window
        if v.is_baseline:
            d = v.day - rng.integers(0, 6, n)
        else:
            d = v.day + np.rint(rng.normal(0, 2.5, n)).astype(int)
        days[v.code] = np.clip(d, lo, hi)
    screen_day = {s: d for s, d in zip(screening["screening_id"], screening["screening_date"])}
    lower = np.array([(screen_day[s] - f).days + 1 for s, f in zip(randomization["screening_id"], first_inf)])
    base = trial.baseline_visit.code
    days[base] = np.maximum(days[base], lower)

    horizon = float(trial.horizon_days)
    hr = np.array([effects.get(a, {}).get("OS_HR", 1.0) for a in received], dtype=float)
    death_rate = _hazard_scale(sim.death_rate_24w, 0.8, horizon) * np.exp(0.8 * severity) * hr
    transplant_rate = _hazard_scale(_TRANSPLANT_RATE_24W, 1.0, horizon) * np.exp(1.0 * severity)
    withdrawal_rate = np.full(n, -np.log1p(-sim.withdrawal_rate) / horizon)
    rates = np.column_stack([death_rate, transplant_rate, withdrawal_rate])
    uniforms = rng.random((n, 3))
    uniforms[:, 0] = (rng.permutation(n) + uniforms[:, 0]) / max(n, 1)
    times = -np.log1p(-uniforms) / np.where(rates > 0, rates, np.nan)
    times = np.nan_to_num(times, nan=np.inf)
    last = trial.last_visit.code
    end_day = days[last].astype(float)
    first = np.argmin(times, axis=1)
    event_day = np.maximum(np.ceil(times[np.arange(n), first]), 2)
    ends = np.where(event_day < end_day, np.array(["DEATH", "TRANSPLANT", "WITHDRAWAL"])[first], "COMPLETED")
    end_day = np.where(ends == "COMPLETED", end_day, event_day).astype(int)

    out = pd.DataFrame({
        "subject_id": randomization["subject_id"], "arm": randomization["arm"], "arm_received": received,
        "severity": severity, "first_infusion": first_inf, "end": ends, "end_day": end_day,
        "etiology": randomization["screening_id"].map(screening.set_index("screening_id")["etiology"]).to_numpy(),
    })
    for v in trial.visits:
        missed = (rng.random(n) < sim.missed_visit_rate) & (not v.is_baseline)
        out[f"day_{v.code}"] = days[v.code]
        out[f"done_{v.code}"] = ~missed & ((days[v.code] < end_day) | ((ends == "COMPLETED") & (days[v.code] <= end_day)))
    return out


def _infusion_count(trial: Trial, arm: str) -> int:
    """Doses a regimen gives: the trial file's ``simulation.doses_per_arm``, else 1."""
    return trial.simulation.doses(arm)


def simulate_infusion(trial: Trial, people: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One row per infusion given: the regimen's infusions 4 weeks apart, none after follow-up ends.

    Dose about 1.0 (x 10^6 cells/kg), clipped to the trial's dose range; a few infusions stop early
    (completed N, lower dose).
    """
    lo, hi = trial.treatment.dose_range
    rows = []
    for p in people.itertuples(index=False):
        for k in range(_infusion_count(trial, p.arm_received)):
            day = 1 + 28 * k + (int(rng.integers(0, 3)) if k else 0)
            if k and day >= p.end_day:
                break
            stopped = rng.random() < 0.04
            dose = rng.uniform(0.4, 0.8) if stopped else rng.normal(1.0, 0.04)
            rows.append({"subject_id": p.subject_id, "infusion_no": k + 1,
                         "infusion_date": p.first_infusion + dt.timedelta(days=day - 1),
                         "arm_received": p.arm_received, "dose": round(float(np.clip(dose, lo, hi)), 1),
                         "completed": "N" if stopped else "Y"})
    return pd.DataFrame(rows, columns=export_spec(trial)["infusion"].column_names)


def _lab_trajectories(trial: Trial, people: pd.DataFrame, rng: np.random.Generator, effects: dict) -> dict:
    """Each lab on its natural scale, shape (participants, visits), before dropping missed visits.

    Analysis-scale value = median + loading x severity + random intercept + correlated residual
    + common trend x w + effect x w, with w = week / last week. PT is 12 s x INR plus noise,
    shifted so that its own effect is the one requested.
    """
    n = len(people)
    weeks = np.array([v.week for v in trial.visits], dtype=float)
    ramp = np.clip(weeks / max(trial.followup_weeks, 1), 0, 1)
    corr = np.exp(-np.abs(weeks[:, None] - weeks[None, :]) / _RESIDUAL_WEEKS)
    chol = np.linalg.cholesky(corr)
    sev = people["severity"].to_numpy()[:, None]
    eff = [effects.get(a, {}) for a in people["arm_received"]]
    cholestatic = people["etiology"].isin(["PBC", "Autoimmune"]).to_numpy()[:, None]
    intercepts = {}
    out = {}
    for lab, m in _LABS.items():
        u = rng.normal(0, m["u"], (n, 1))
        if lab == "ast":
            u = 0.6 * intercepts["alt"] * m["u"] / _LABS["alt"]["u"] + 0.8 * u
        intercepts[lab] = u
        resid = rng.normal(0, m["e"], (n, len(weeks))) @ chol.T
        centre = np.log(m["mid"]) if m["log"] else m["mid"]
        shift = 0.6 * cholestatic if lab == "alp" else 0.0
        code = lab.upper()
        effect = np.array([e.get(code, 0.0) for e in eff])[:, None]
        y = centre + m["sev"] * sev + u + resid + shift + m["trend"] * ramp
        if lab == "inr":
            value = np.exp(y) + effect * ramp
        else:
            value = (np.exp(y + effect * ramp) if m["log"] else y + effect * ramp)
        out[lab] = np.clip(value, m["lo"], m["hi"])
    pt_shift = np.array([e.get("PT", 0.0) - 12.0 * e.get("INR", 0.0) for e in eff])[:, None]
    out["pt"] = np.clip(12.0 * out["inr"] + rng.normal(0, 0.6, out["inr"].shape) + pt_shift * ramp, 9.0, 80.0)
    return out


def _check_panel(trial: Trial) -> None:
    unknown = [t.code for t in trial.lab_panel if t.column not in _MODELLED]
    if unknown:
        raise ValueError(f"{trial.id}: the simulator has no model for lab test(s) {unknown} of the lab_panel "
                         f"(it simulates {sorted(c.upper() for c in _MODELLED)})")


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
                   "lab_date": p["first_infusion"] + dt.timedelta(days=int(p[f"day_{v.code}"]) - 1)}
            row.update({c: round(float(labs[c][i, j]), d) for c, d in decimals.items()})
            rows.append(row)
    out = pd.DataFrame(rows, columns=cols)
    for c, d in decimals.items():
        if d == 0:
            out[c] = out[c].astype("int64")
    return out


def simulate_clinical(trial: Trial, people: pd.DataFrame, labs: dict, rng: np.random.Generator) -> pd.DataFrame:
    """Ascites, encephalopathy and dialysis at each attended visit, following severity and bilirubin.

    Severity at a visit is the baseline severity moved by the change in log bilirubin, so a patient
    whose liver improves (by time or treatment) tends to lose ascites; a person-level propensity
    keeps grades stable within a patient. Dialysis only with high creatinine, and rarely.
    """
    n, nv = labs["tbil"].shape
    sev_t = people["severity"].to_numpy()[:, None] + np.log(labs["tbil"] / labs["tbil"][:, :1]) / _LABS["tbil"]["sev"]
    asc = 0.9 * sev_t + rng.normal(0, 0.45, (n, 1)) + rng.normal(0, 0.3, (n, nv))
    enc = 0.8 * sev_t + rng.normal(0, 0.5, (n, 1)) + rng.normal(0, 0.3, (n, nv))
    asc_cat = np.select([asc < -1.1, asc < 0.7], ["none", "mild"], "moderate-severe")
    enc_cat = np.select([enc < 0.9, enc < 2.3], ["none", "grade 1-2"], "grade 3-4")
    dialysis = (labs["creat"] > 265) & (rng.random((n, nv)) < 0.5) | (rng.random((n, nv)) < 0.003)
    rows = []
    for j, v in enumerate(trial.visits):
        for i in np.flatnonzero(people[f"done_{v.code}"].to_numpy()):
            p = people.iloc[i]
            rows.append({"subject_id": p["subject_id"], "visit": v.code,
                         "assessment_date": p["first_infusion"] + dt.timedelta(days=int(p[f"day_{v.code}"]) - 1),
                         "ascites": asc_cat[i, j], "encephalopathy": enc_cat[i, j],
                         "dialysis": "Y" if dialysis[i, j] else "N"})
    return pd.DataFrame(rows, columns=export_spec(trial)["clinical"].column_names)


def _ae(rng: np.random.Generator, term: str, start: dt.date, end_limit: dt.date, serious: bool,
        related: str, duration: float, led_to_withdrawal: bool = False, end: dt.date | None = None) -> dict:
    """One AE row; resolved after ``duration`` days unless that falls after follow-up ends (then ongoing)."""
    if serious:
        severity = "severe" if rng.random() < 0.7 else "moderate"
    else:
        severity = _choice(rng, {"mild": 0.65, "moderate": 0.3, "severe": 0.05})
    if end is None:
        end = start + dt.timedelta(days=int(np.ceil(duration)))
        end = end if end <= end_limit else None
    return {"event_type": "AE", "term": term, "start_date": start, "end_date": end,
            "serious": "Y" if serious else "N", "severity": severity, "relatedness": related,
            "led_to_withdrawal": "Y" if led_to_withdrawal else "N"}


def simulate_events(trial: Trial, people: pd.DataFrame, infusion: pd.DataFrame | None,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Adverse events, then how follow-up ended (DEATH, TRANSPLANT, WITHDRAWAL or COMPLETED).

    Infusion reactions cluster in the days after each infusion; route AEs only after hepatic-artery
    infusions; disease AEs arrive over follow-up, more often in sicker patients. A death comes
    with a serious AE of its cause; a physician's withdrawal is sometimes due to an AE. Without an
    infusion file (``infusion`` None) there are no infusion reactions.
    """
    last_week = max(v.week for v in trial.visits)
    inf_dates = {} if infusion is None else infusion.groupby("subject_id")["infusion_date"].apply(list).to_dict()
    rows = []
    for p in people.itertuples(index=False):
        start = p.first_infusion
        end = start + dt.timedelta(days=int(p.end_day) - 1)
        ev = []
        for d in inf_dates.get(p.subject_id, []):
            for term in _choice(rng, _INFUSION_AES, rng.poisson(0.8)):
                onset = min(d + dt.timedelta(days=int(rng.integers(0, 3))), end)
                ev.append(_ae(rng, term, onset, end, rng.random() < 0.02,
                              _choice(rng, {"possible": 0.5, "probable": 0.3, "unlikely": 0.2}), rng.exponential(2)))
            if p.arm_received == "HA":
                for term, prob in _ROUTE_AES.items():
                    if rng.random() < prob:
                        onset = min(d + dt.timedelta(days=int(rng.integers(0, 2))), end)
                        ev.append(_ae(rng, term, onset, end, False,
                                      _choice(rng, {"probable": 0.6, "definite": 0.4}), rng.exponential(3)))
        span = max((end - start).days, 1)
        for term in _choice(rng, _DISEASE_AES, rng.poisson(2.0 * np.exp(0.35 * p.severity) * span / 168)):
            onset = start + dt.timedelta(days=int(rng.integers(0, span + 1)))
            ev.append(_ae(rng, term, onset, end, rng.random() < _DISEASE_AES[term][1],
                          _choice(rng, {"not related": 0.7, "unlikely": 0.25, "possible": 0.05}), rng.exponential(10)))
        term = ""
        if p.end == "DEATH":
            term = _choice(rng, _DEATH_CAUSES)
            onset = max(end - dt.timedelta(days=int(rng.integers(0, 8))), start)
            ae = _ae(rng, term, onset, end, True, _choice(rng, {"not related": 0.8, "unlikely": 0.2}), 0, end=end)
            ev.append({**ae, "severity": "severe"})
        elif p.end == "TRANSPLANT":
            term = "liver transplantation"
        elif p.end == "WITHDRAWAL":
            term = _choice(rng, _WITHDRAWAL_TERMS)
            if term == "physician decision" and rng.random() < 0.5:
                onset = max(end - dt.timedelta(days=int(rng.integers(0, 6))), start)
                ev.append(_ae(rng, _choice(rng, _DISEASE_AES), onset, end, True,
                              _choice(rng, {"not related": 0.6, "unlikely": 0.3, "possible": 0.1}),
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
    """Contract column order; dates as datetime64; categories (incl. arms, visits) as ordered categoricals."""
    cols = [c for c in spec.columns if c.name in frame]
    out = frame[[c.name for c in cols]].copy()
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
    for name, col in (("infusion", "infusion_date"), ("labs", "lab_date"), ("clinical", "assessment_date"),
                      ("events", "start_date")):
        if name in frames:
            t = frames[name]
            out[name] = t[(t[col] <= cut) & t["subject_id"].isin(rand["subject_id"])]
    ev = out["events"].copy()
    ev.loc[ev["end_date"] > cut, "end_date"] = pd.NaT
    out["events"] = ev
    return {name: t.reset_index(drop=True) for name, t in out.items()}


def _sample_limits(frames: dict, people: pd.DataFrame, cutoff: dt.date | None) -> pd.DataFrame:
    """Per participant still in the export: study day 1 and the last date a sample may have."""
    ev = frames["events"]
    ends = ev[ev["event_type"].isin(["DEATH", "TRANSPLANT", "WITHDRAWAL", "COMPLETED"])].set_index("subject_id")
    stop = ends["start_date"] - pd.to_timedelta((ends["event_type"] != "COMPLETED").astype(int), unit="D")
    p = people.set_index("subject_id").loc[frames["randomization"]["subject_id"]]
    last = stop.reindex(p.index).fillna(pd.Timestamp(cutoff) if cutoff else pd.NaT)
    if cutoff:
        last = last.clip(upper=pd.Timestamp(cutoff))
    return pd.DataFrame({"day1": pd.to_datetime(p["first_infusion"]), "last": last})


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
            comments.append(str(_choice(rng, {"suspected infection": 1, "jaundice worsening": 1, "ascites tapped": 1})))
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
        extra = _extra_samples(trial, labs, _sample_limits(frames, people, cutoff), rng)
        labs = pd.concat([labs, extra.astype({"visit": labs["visit"].dtype})], ignore_index=True)
    tests = [t.column for t in trial.lab_panel]
    labs[tests] = labs[tests].astype(object)
    miss = rng.random((len(labs), len(tests))) < 0.025
    for i in np.flatnonzero(miss.all(axis=1)):
        miss[i, rng.integers(len(tests))] = False
    codes = rng.choice(["", "ND", "HEMOLYZED"], size=int(miss.sum()), p=[0.75, 0.17, 0.08])
    if len(codes) and "HEMOLYZED" not in codes:
        codes[rng.integers(len(codes))] = "HEMOLYZED"
    for i, j, code in zip(*np.nonzero(miss), codes):
        labs.iat[i, labs.columns.get_loc(tests[j])] = str(code) or None
        if code == "HEMOLYZED":
            labs.iat[i, labs.columns.get_loc("lab_comment")] = "haemolysed sample"
    for col in [c for c in ("alt", "ast", "alp") if c in tests]:
        values = pd.to_numeric(labs[col].where(labs[col].map(lambda v: not isinstance(v, str))), errors="coerce")
        if values.notna().any():
            i = values.idxmin()
            labs.at[i, col] = f"<{5 * (int(values[i] // 5) + 1)}"
    out["labs"] = labs.sort_values(["subject_id", "visit", "lab_date"], kind="stable").reset_index(drop=True)

    clinical = frames["clinical"].copy()
    if len(clinical):
        clinical[["ascites", "encephalopathy"]] = clinical[["ascites", "encephalopathy"]].astype(object)
        for i in rng.choice(len(clinical), size=min(int(rng.integers(1, 3)), len(clinical)), replace=False):
            clinical.at[i, str(rng.choice(["ascites", "encephalopathy"]))] = "ND"
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

    ``seed`` defaults to the trial's simulation seed, ``effects`` to its simulation effects
    ({arm: {LAB_CODE: effect at the last week vs control on the analysis scale, "OS_HR": hazard
    ratio}}); ``effects={}`` is the null scenario. ``realistic`` adds the quirks of a real export
    (module docstring); ``cutoff`` (default: the trial's) truncates the export to that date. Neither
    changes the cohort's random draws. No ``infusion`` file when day 1 is the randomization.
    """
    _check_panel(trial)
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
    infusion = simulate_infusion(trial, people, rng) if trial.has_dosing_file else None
    labs = _lab_trajectories(trial, people, rng, effects)
    frames = {
        "screening": screening,
        "randomization": randomization,
        "infusion": infusion,
        "labs": simulate_labs(trial, people, labs),
        "clinical": simulate_clinical(trial, people, labs, rng),
        "events": simulate_events(trial, people, infusion, rng),
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
