"""Every analysis of the plan, computed once per build: the chapters, the verdicts and the analysis results
dataset (``helpers.analysis.ard``) read them from here.

``Results`` computes each analysis on first use and keeps it. A build computes them all and their ARD
(``compute_all``) before it saves the cohort, so its chapters only read; a chapter run by hand computes what it
reads, once. The chapters show the result tables as views of the ARD (``view``, ``views``, ``balance_view``,
``sensitivity_view``, ``findings``): a number they print is the number the ARD holds.
"""
from __future__ import annotations

import os
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import cache
from helpers.analysis import (allocation, balance, baseline, cohort, design, findings, outcomes, safety, sensitivity,
                              survival)
from helpers.analysis.ard import build_ard, result_table
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
        return cohort.missingness_table(self.adlb_all, self.trial)

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
        return survival.km_estimates(self.adtte, self.trial)

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
        """What the plan's verdicts rest on, read from the ARD: the primary time-to-event endpoint's results and
        the MMRM of the endpoints tested by MMRM."""
        pe, codes = self.trial.primary_endpoint, findings.mmrm_codes(self.trial)
        surv = self.view("survival")
        surv = surv[surv["PARAMCD"] == pe.code] if pe.is_time_to_event else surv.iloc[0:0]
        mmrm = self.view("mmrm")
        return findings.Findings(surv.reset_index(drop=True), mmrm[mmrm["PARAMCD"].isin(codes)].reset_index(drop=True))

    def table(self, name: str) -> pd.DataFrame:
        """Result table ``name`` as computed (its file name in ``_build/results/``)."""
        computed = {"randomization": lambda: self.allocation.results(self.balance),
                    "sensitivity": lambda: self.sensitivity["results"], "design": lambda: self.design[1],
                    "tipping": lambda: self.sensitivity["grid"], "tipping_point": lambda: self.tipping_points}
        if name in computed:
            return computed[name]()
        if isinstance(getattr(type(self), name, None), cached_property):
            return getattr(self, name)
        return self.outcomes[name]

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every tidy result table, keyed by its file name in ``_build/results/`` (the tipping-point tables when
        the sensitivity analyses ran; ``allocation_list`` only when the trial file states one)."""
        names = ["baseline", "randomization", *self.outcomes, "survival", "adverse_events", "sensitivity", "design",
                 "design_effects", "key_results", "mean_ci", "km", "vital_status", "disposition", "missingness",
                 "plan"]
        if "grid" in self.sensitivity:
            names += ["tipping", "tipping_point"]
        if self.allocation_list is not None:
            names.append("allocation_list")
        return {name: self.table(name) for name in names}

    @cached_property
    def ard(self) -> pd.DataFrame:
        """The analysis results dataset: every result table, one statistic per row (``helpers.analysis.ard``)."""
        return build_ard(self.tables(), self.trial)

    def view(self, name: str) -> pd.DataFrame | None:
        """Result table ``name`` read back from the ARD, each column of its type: what the chapters show. Without
        the whole ARD (a chapter run by hand), from the ARD rows of this table alone. None for a table the trial
        has not (``allocation_list`` without a stated list)."""
        computed = self.table(name)
        if computed is None:
            return None
        ard = self.__dict__.get("ard")
        if ard is None:
            ard = build_ard({name: computed}, self.trial)
        return result_table(ard, name, list(computed.columns))

    def views(self, names) -> dict[str, pd.DataFrame]:
        return {name: self.view(name) for name in names}

    def balance_view(self) -> pd.DataFrame:
        """The baseline balance (|SMD| and its chance 95th percentile by comparison, variable and level) from the
        randomization table's rows of the ARD."""
        rows = self.view("randomization")
        rows = rows[rows["check"] == "balance"]
        measure = rows["statistic"].str.extract(r"^(\|SMD\||chance 95th percentile) (.+)$")
        keyed = pd.DataFrame({"comparison": measure[1], "variable": rows["item"], "level": rows["level"],
                              "measure": measure[0].map({"|SMD|": "abs_smd", "chance 95th percentile": "chance_p95"}),
                              "value": rows["value"]})
        keys = ["comparison", "variable", "level"]
        wide = keyed.set_index(keys + ["measure"])["value"].unstack("measure")
        wide = wide.reindex(pd.MultiIndex.from_frame(keyed[keys].drop_duplicates())).reset_index()
        return wide.rename_axis(columns=None)[list(self.balance.columns)].astype(self.balance.dtypes.to_dict())

    def sensitivity_view(self) -> dict:
        """``sensitivity`` with its results, imputation grid, imputation at delta 0 and tipping points read from
        the ARD (the data they rest on, the completed and wide tables and the worst-rank scores, as computed)."""
        a = dict(self.sensitivity) | {"results": self.view("sensitivity")}
        if "grid" in a:
            grid = self.view("tipping")
            a["grid"], a["mi"] = grid, grid[grid["delta"] == 0][list(a["mi"].columns)].reset_index(drop=True)
            points = self.view("tipping_point").set_index("TRT01P")
            a["tipping"] = {arm: {k: points.at[arm, k] for k in tp} for arm, tp in a["tipping"].items()}
        return a

    def compute_all(self) -> "Results":
        """Compute every analysis and the ARD now (a build does, before its chapters run)."""
        self.ard  # noqa: B018
        self.findings  # noqa: B018
        return self


def kept_results(results: Results, inputs: dict, cache_dir: os.PathLike) -> Results:
    """``results`` with every analysis computed, or, when a build of the same ``inputs`` computed them before,
    those kept from it (in ``cache_dir``, the build folder's; the last ``cache.KEPT``). ``inputs``
    is what the analyses depend on: the build's ``freshness.common_key`` (helpers code, trial file, export files
    and mapping, parameters, blinding key); the numeric packages' versions are added. So a build in which only a
    notebook or a page changed runs no analysis again."""
    path = Path(cache_dir) / f"{cache.key(inputs)}.pickle"
    kept = cache.read(path, lambda v: isinstance(v, Results) and "ard" in v.__dict__)
    if kept is not None:
        return kept
    results.compute_all()
    try:
        cache.write(path, results, keep=cache.KEPT)
    except OSError as e:
        warnings.warn(f"analyses not kept in {path.parent}: {e}", RuntimeWarning, stacklevel=2)
    return results
