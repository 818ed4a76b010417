"""Every analysis of the plan, computed once per build: the chapters, the verdicts and the analysis results
dataset (``helpers.analysis.ard``) read them from here.

``Results`` computes each analysis on first use and keeps it. A build computes them all (``compute_all``) before
it saves the cohort, so its chapters only read; a chapter run by hand computes what it reads, once.
"""
from __future__ import annotations

from functools import cached_property

import pandas as pd

from helpers.analysis import allocation, balance, baseline, design, findings, outcomes, safety, sensitivity, survival
from helpers.data.loading import Export
from helpers.data.randomization import stated_allocation_list
from helpers.trial import Trial

DESIGN_REPLICATES = 60  # simulated trials per scenario in the book (a quick look; `make design` runs 1000)


class Results:
    """The analyses of one cohort (the validated export and its ADaM datasets)."""

    def __init__(self, export: Export, adsl: pd.DataFrame, adlb: pd.DataFrame, adtte: pd.DataFrame, trial: Trial):
        self.export, self.adsl, self.adlb, self.adtte, self.trial = export, adsl, adlb, adtte, trial

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
    def design(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The design's simulated trials and their operating characteristics (they depend on the trial file alone)."""
        return design.design_results(self.trial, DESIGN_REPLICATES)

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
               "key_results": self.key_results}
        if self.allocation_list is not None:
            out["allocation_list"] = self.allocation_list
        return out

    def compute_all(self) -> "Results":
        """Compute every analysis now (a build does, before its chapters run)."""
        self.tables()
        self.mean_ci, self.findings  # noqa: B018
        return self
