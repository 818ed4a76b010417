"""Every analysis of the plan, computed once per build: the chapters, the verdicts and the analysis results
dataset (``helpers.analysis.ard``) read them from here.

``Results`` computes each analysis on first use and keeps it. A build computes them all (``compute_all``) before
it saves the cohort, so its chapters only read; a chapter run by hand computes what it reads, once.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from helpers.analysis import (allocation, balance, baseline, cohort, design, findings, outcomes, safety, sensitivity,
                              survival)
from helpers.analysis.imputation import MI_SEED, N_BURN_IN, N_IMPUTATIONS
from helpers.data.loading import Export
from helpers.data.randomization import stated_allocation_list
from helpers.data.simulation import simulation_seed
from helpers.trial import Trial

DESIGN_REPLICATES = 60  # simulated trials per scenario in the book (a quick look; `make design` runs 1000)


class Results:
    """The analyses of one cohort (the validated export and its ADaM datasets)."""

    def __init__(self, export: Export, adsl: pd.DataFrame, adlb: pd.DataFrame, adtte: pd.DataFrame, trial: Trial,
                 adlb_all: pd.DataFrame | None = None):
        self.export, self.adsl, self.adlb, self.adtte, self.trial = export, adsl, adlb, adtte, trial
        self.adlb_all = adlb if adlb_all is None else adlb_all

    @cached_property
    def plan(self) -> pd.DataFrame:
        """The analysis plan's settings the book prints beside its results: level, horizon, seeds, replicates."""
        t = self.trial
        settings = {"alpha": t.alpha, "confidence_level": 95, "horizon_days": t.horizon_days,
                    "planned_n": t.planned_n, "simulation_seed": simulation_seed(t),
                    "allocation_seed": t.randomization.seed, "mi_seed": MI_SEED, "imputations": N_IMPUTATIONS,
                    "burn_in": N_BURN_IN, "design_seed": design.assumption(t, "seed"),
                    "design_replicates": DESIGN_REPLICATES, "power_target": design.POWER_TARGET}
        return pd.DataFrame({"setting": list(settings), "value": [np.nan if v is None else float(v)
                                                                   for v in settings.values()]})

    @cached_property
    def disposition(self) -> pd.DataFrame:
        return cohort.disposition_counts(self.adsl, self.trial)

    @cached_property
    def missingness(self) -> pd.DataFrame:
        """Laboratory records and missing values by parameter and visit, with the whole's totals."""
        m = cohort.missingness_by_visit(self.adlb_all, self.trial)
        total = pd.DataFrame([{"Parameter": "All", "Visit": "All", "Records": int(m["Records"].sum()),
                               "Missing": int(m["Missing"].sum()), "Reasons": ""}])
        return pd.concat([m, total], ignore_index=True)

    @cached_property
    def baseline(self) -> pd.DataFrame:
        return baseline.baseline_summary(self.adsl, self.trial)

    @cached_property
    def allocation_list(self) -> pd.DataFrame | None:
        return stated_allocation_list(self.trial)

    @cached_property
    def allocation(self) -> allocation.AllocationCheck:
        return allocation.check_allocation(self.export, self.trial, self.allocation_list)

    @cached_property
    def balance(self) -> pd.DataFrame:
        return balance.baseline_balance(self.adsl, self.trial)

    @cached_property
    def outcomes(self) -> dict[str, pd.DataFrame]:
        """The outcomes chapter's tables: lab_by_visit, ancova, mmrm, holm and the classed scores' tables."""
        return outcomes.outcome_results(self.adlb, self.adsl, self.trial)

    @cached_property
    def mean_ci(self) -> pd.DataFrame:
        return outcomes.mean_ci_by_visit(self.adlb, self.trial)

    @cached_property
    def survival(self) -> pd.DataFrame:
        return survival.survival_results(self.adtte, self.adsl, self.trial)

    @cached_property
    def km(self) -> pd.DataFrame:
        """Kaplan-Meier estimates of every time-to-event endpoint by arm and event time."""
        parts = [survival.km_by_arm(self.adtte, self.trial, t.code).assign(PARAMCD=t.code)
                 for t in self.trial.time_to_event]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    @cached_property
    def vital_status(self) -> pd.DataFrame:
        parts = [survival.status_counts(self.adtte, self.adsl, self.trial, t.code) for t in self.trial.time_to_event]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    @cached_property
    def adae(self) -> pd.DataFrame:
        return safety.build_adae(self.export, self.adsl, self.trial)

    @cached_property
    def deaths(self) -> pd.DataFrame:
        return safety.deaths(self.export, self.adsl, self.trial)

    @cached_property
    def adverse_events(self) -> pd.DataFrame:
        return safety.adverse_event_results(self.adae, self.deaths, self.adsl, self.trial)

    @cached_property
    def sensitivity(self) -> dict:
        """``sensitivity.sensitivity_analyses`` of the trial's sensitivity endpoint (its tidy table: ``["results"]``)."""
        return sensitivity.sensitivity_analyses(self.adlb, self.adsl, self.trial, self.trial.sensitivity_endpoint)

    @cached_property
    def tipping_points(self) -> pd.DataFrame:
        """The tipping point of each experimental arm (``tipping.tipping_point``): the delta at which the
        conclusion changes, the grid's largest delta (as ratios too for a log-scale endpoint), the two conclusions."""
        points = self.sensitivity.get("tipping", {})
        out = pd.DataFrame([{"TRT01P": arm} | tp for arm, tp in points.items()])
        if len(out) and self.trial.endpoint(self.trial.sensitivity_endpoint).log:
            out = out.assign(delta_ratio=np.exp(out["delta"]), grid_max_ratio=np.exp(out["grid_max"]))
        return out

    @cached_property
    def design(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The design's simulated trials and their operating characteristics (they depend on the trial file alone)."""
        return design.design_results(self.trial, DESIGN_REPLICATES)

    @cached_property
    def design_effects(self) -> pd.DataFrame:
        """The design's detectable effects (``design.detectable_effect``: on the analysis scale, and as a ratio
        for a log-scale endpoint) and, per scenario, the ratio of the mean model SE to the empirical SE."""
        _, oc = self.design
        rows = [{"endpoint": e, "scenario": np.nan, "statistic": "detectable_effect", "value": v}
                for e, v in design.detectable_effect(oc, self.trial).items()]
        rows += [{"endpoint": r.endpoint, "scenario": r.scenario, "statistic": "se_ratio",
                  "value": r.mean_se / r.empirical_se} for r in oc.itertuples()]
        t = self.trial
        sds = {design.KEY: (design.key_change_sd, t.key_secondary)}
        if design.is_continuous(t):
            sds[design.PRIMARY] = (design.primary_change_sd, t.primary_endpoint.code)
        for endpoint, (change_sd, code) in sds.items():
            if code is None:
                continue
            sd = change_sd(t)
            rows.append({"endpoint": endpoint, "scenario": np.nan, "statistic": "change_sd", "value": sd})
            if t.endpoint(code).log:
                rows.append({"endpoint": endpoint, "scenario": np.nan, "statistic": "change_sd_ratio",
                             "value": float(np.exp(sd))})
        out = pd.DataFrame(rows)
        return out.assign(scenario=out["scenario"].astype("Int64"))

    @cached_property
    def key_results(self) -> pd.DataFrame:
        o = self.outcomes
        return findings.key_results(self.survival, o["mmrm"], o["holm"], self.adverse_events, self.trial)

    @cached_property
    def findings(self) -> findings.Findings:
        """What the plan's verdicts rest on: the primary time-to-event endpoint's results and the MMRM of the
        endpoints tested by MMRM, rows of the tables above."""
        pe, codes = self.trial.primary_endpoint, findings.mmrm_codes(self.trial)
        surv = self.survival[self.survival["PARAMCD"] == pe.code] if pe.is_time_to_event else \
            self.survival.iloc[0:0]
        mmrm = self.outcomes["mmrm"]
        return findings.Findings(surv.reset_index(drop=True), mmrm[mmrm["PARAMCD"].isin(codes)].reset_index(drop=True))

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every tidy result table, keyed by its file name in ``_build/results/`` (``allocation_list`` only when
        the trial file states one)."""
        reps, oc = self.design
        out = {"baseline": self.baseline,
               "randomization": self.allocation.results(self.balance),
               **self.outcomes,
               "survival": self.survival,
               "adverse_events": self.adverse_events,
               "sensitivity": self.sensitivity["results"],
               "design": oc,
               "design_effects": self.design_effects,
               "key_results": self.key_results,
               "mean_ci": self.mean_ci,
               "km": self.km,
               "vital_status": self.vital_status,
               "disposition": self.disposition,
               "missingness": self.missingness,
               "plan": self.plan}
        if "grid" in self.sensitivity:
            out |= {"tipping": self.sensitivity["grid"], "tipping_point": self.tipping_points}
        if self.allocation_list is not None:
            out["allocation_list"] = self.allocation_list
        return out

    def compute_all(self) -> "Results":
        """Compute every analysis now (a build does, before its chapters run)."""
        self.tables()
        self.findings  # noqa: B018
        return self
