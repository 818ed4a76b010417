"""Outcomes at each timepoint: lab-by-visit summaries, ANCOVA per visit, MMRM per endpoint,
the class shift of derived parameters that have classes, Holm adjustment, intercurrent-event counts,
and the tidy result tables the chapter exports (their report layouts and prose: ``helpers.report.outcomes``).

Every treatment comparison is each non-control arm minus the trial's control arm. Endpoints the
trial file marks ``log: true`` are analysed as log(AVAL) - log(BASE) adjusted for log(BASE) and
reported back-transformed as ratios of geometric means (exp of the difference on the log scale);
the others as differences on their own scale. The three model tables (ANCOVA, MMRM, Holm) share
the columns PARAMCD, PARAM, AVISIT, AVISITN, TRT01P, contrast, n, estimate, se, df, lower, upper,
p_value, scale; ``se`` is always on the analysis scale (log scale for ratios).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from helpers.analysis.mmrm import MMRMConvergenceError, MMRMFallbackWarning, MMRMResult, fit_mmrm
from helpers.analysis.summaries import describe
from helpers.data.adam import intercurrent_columns
from helpers.trial import Endpoint, Trial

LOG_SCALE = "log: ratio of geometric means"
ORIGINAL_SCALE = "original: difference"
MODEL_COLUMNS = ["PARAMCD", "PARAM", "AVISIT", "AVISITN", "TRT01P", "contrast", "n", "estimate", "se",
                 "df", "lower", "upper", "p_value", "scale"]
NOT_ASSESSED = "Not assessed"


# ------------------------------------------------------------------ descriptive summaries

def lab_by_visit(adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """n, mean, SD, median, Q1, Q3 (``summaries.describe``) of the value (AVAL) and of the change from
    baseline (CHG), by endpoint, arm and visit: the standard lab-by-visit table, tidy (one row per cell
    and variable)."""
    rows = []
    for e in trial.endpoints:
        d = adlb[adlb["PARAMCD"] == e.code]
        for v in trial.visits:
            for arm in trial.arms:
                cell = d[(d["AVISITN"] == v.week) & (d["TRT01P"] == arm.label)]
                for var in ("AVAL", "CHG"):
                    if var == "CHG" and v.is_baseline:
                        continue
                    rows.append({"PARAMCD": e.code, "PARAM": e.label_with_unit, "AVISIT": v.label, "AVISITN": v.week,
                                 "TRT01P": arm.label, "variable": var} | describe(cell[var]))
    return pd.DataFrame(rows)


def t_interval(values: pd.Series, level: float = 0.95) -> tuple[int, float, float, float]:
    """n, mean and the t-based confidence interval of the mean (nan limits when n < 2)."""
    v = values.dropna().to_numpy(dtype=float)
    n = len(v)
    if n == 0:
        return 0, np.nan, np.nan, np.nan
    m = v.mean()
    if n < 2:
        return n, m, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n)
    return n, m, m - half, m + half


def mean_ci_by_visit(adlb: pd.DataFrame, trial: Trial, level: float = 0.95) -> pd.DataFrame:
    """Mean of AVAL with its t-based 95% CI by endpoint, arm and visit; for log endpoints the
    geometric mean and CI (the interval for the mean of log AVAL, exponentiated)."""
    rows = []
    for e in trial.endpoints:
        d = adlb[adlb["PARAMCD"] == e.code]
        for arm in trial.arms:
            for v in trial.visits:
                vals = d.loc[(d["AVISITN"] == v.week) & (d["TRT01P"] == arm.label), "AVAL"]
                n, m, lo, hi = t_interval(np.log(vals) if e.log else vals, level)
                if e.log:
                    m, lo, hi = np.exp([m, lo, hi])
                rows.append({"PARAMCD": e.code, "PARAM": e.label_with_unit, "TRT01P": arm.label, "AVISIT": v.label,
                             "AVISITN": v.week, "n": n, "mean": m, "lower": lo, "upper": hi,
                             "statistic": "geometric mean" if e.log else "mean"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ analysis data

def analysis_data(adlb: pd.DataFrame, trial: Trial, paramcd: str, adsl: pd.DataFrame | None = None) -> pd.DataFrame:
    """Post-baseline records of one endpoint with a value and a baseline, on the analysis scale.

    For log endpoints CHG is log(AVAL) - log(BASE) and BASE is log(BASE), so one formula serves both
    scales. TRT01P is categorical with the control arm first (the reference level). Randomization
    strata named in the trial file are merged from ADSL.
    """
    e = trial.endpoint(paramcd)
    d = adlb[(adlb["PARAMCD"] == paramcd) & (adlb["AVISITN"] > 0)].dropna(subset=["AVAL", "BASE"]).copy()
    if e.log:
        if (d["AVAL"] <= 0).any() or (d["BASE"] <= 0).any():
            raise ValueError(f"{paramcd} is analysed on the log scale but has values <= 0")
        d["CHG"] = np.log(d["AVAL"]) - np.log(d["BASE"])
        d["BASE"] = np.log(d["BASE"])
    d["TRT01P"] = pd.Categorical(d["TRT01P"], categories=[a.label for a in trial.arm_order])
    strata = trial.strata
    if strata:
        if adsl is None or not set(strata) <= set(adsl.columns):
            raise ValueError(f"stratification factors {strata} must be columns of ADSL")
        d = d.merge(adsl[["USUBJID"] + strata], on="USUBJID", how="left")
    return d.reset_index(drop=True)


def _strata_terms(trial: Trial) -> str:
    return "".join(f" + C({s})" for s in trial.strata)


def ancova_formula(trial: Trial) -> str:
    """Change on arm and baseline (plus the randomization strata): the ANCOVA of every analysis at one visit."""
    return "CHG ~ C(TRT01P) + BASE" + _strata_terms(trial)


def _scale(e: Endpoint) -> str:
    return LOG_SCALE if e.log else ORIGINAL_SCALE


def _back_transform(table: pd.DataFrame, e: Endpoint) -> pd.DataFrame:
    """exp of estimate and limits for log endpoints (ratio of geometric means); se stays on the log scale."""
    if e.log:
        for col in ("estimate", "lower", "upper"):
            table[col] = np.exp(table[col])
    table["scale"] = _scale(e)
    return table


# ------------------------------------------------------------------ ANCOVA per visit

def ancova(adlb: pd.DataFrame, trial: Trial, adsl: pd.DataFrame | None = None, level: float = 0.95) -> pd.DataFrame:
    """ANCOVA per endpoint and follow-up visit, observed cases (statsmodels OLS):
    CHG ~ arm + BASE (+ randomization strata), each non-control arm minus control with CI and t-test.
    A visit without two arms and residual degrees of freedom gives a row of missing values."""
    control = trial.control.label
    rows = []
    for e in trial.endpoints:
        d = analysis_data(adlb, trial, e.code, adsl)
        for v in trial.followup_visits:
            dv = d[d["AVISITN"] == v.week]
            for arm in trial.experimental_arms:
                base = {"PARAMCD": e.code, "PARAM": e.label_with_unit, "AVISIT": v.label, "AVISITN": v.week,
                        "TRT01P": arm.label, "contrast": f"{arm.label} - {control}", "n": len(dv)}
                rows.append(base | _ols_difference(dv, arm.label, trial, level))
    table = pd.DataFrame(rows)
    return _finish(table, trial)


def _ols_difference(d: pd.DataFrame, arm: str, trial: Trial, level: float) -> dict:
    empty = {k: np.nan for k in ("estimate", "se", "df", "lower", "upper", "p_value")}
    counts = d["TRT01P"].value_counts()
    if counts.get(arm, 0) == 0 or counts.get(trial.control.label, 0) == 0:
        return empty
    d = d.assign(TRT01P=d["TRT01P"].cat.remove_unused_categories())
    import statsmodels.formula.api as smf  # its import takes about 1.7 s: a chapter that only shows results skips it

    fit = smf.ols(ancova_formula(trial), data=d).fit()
    if fit.df_resid < 1:
        return empty
    term = f"C(TRT01P)[T.{arm}]"
    lower, upper = fit.conf_int(alpha=1 - level).loc[term]
    return {"estimate": fit.params[term], "se": fit.bse[term], "df": fit.df_resid, "lower": lower,
            "upper": upper, "p_value": fit.pvalues[term]}


def _finish(table: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    out = []
    for code, t in table.groupby("PARAMCD", sort=False):
        out.append(_back_transform(t.copy(), trial.endpoint(code)))
    return pd.concat(out, ignore_index=True)[MODEL_COLUMNS + [c for c in table.columns if c not in MODEL_COLUMNS]]


# ------------------------------------------------------------------ MMRM per endpoint

def mmrm_formula(trial: Trial) -> str:
    """CHG ~ TRT01P * AVISIT + BASE * AVISIT; with a single follow-up visit, CHG ~ TRT01P + BASE."""
    strata = _strata_terms(trial)
    if len(trial.followup_visits) == 1:
        return "CHG ~ TRT01P + BASE" + strata
    return "CHG ~ TRT01P * AVISIT + BASE * AVISIT" + strata


def fit_endpoint_mmrm(adlb: pd.DataFrame, trial: Trial, paramcd: str, adsl: pd.DataFrame | None = None,
                      covariance: str = "us") -> MMRMResult:
    """MMRM of the change from baseline over the follow-up visits for one endpoint (REML, Satterthwaite),
    on the log scale for log endpoints. Fallback warnings are absorbed: the result carries them
    (``covariance``, ``fallback_reason``)."""
    d = analysis_data(adlb, trial, paramcd, adsl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MMRMFallbackWarning)
        return fit_mmrm(d, mmrm_formula(trial), subject="USUBJID", visit="AVISIT", covariance=covariance,
                        reml=True, reference={"TRT01P": trial.control.label},
                        visit_order=[v.label for v in trial.followup_visits])


def covariance_label(result: MMRMResult) -> str:
    """The structure used (its code, as the results store it), and the one requested when a fallback
    happened: 'toeph (fallback from us)'."""
    if result.covariance == result.covariance_requested:
        return result.covariance
    return f"{result.covariance} (fallback from {result.covariance_requested})"


def mmrm_differences(result: MMRMResult, trial: Trial, paramcd: str, level: float = 0.95,
                     back_transform: bool = True) -> pd.DataFrame:
    """LS-mean differences (each arm minus control) per follow-up visit from a fitted endpoint MMRM,
    back-transformed for log endpoints (unless ``back_transform`` is False: then on the model's scale), with the
    covariance structure used."""
    e = trial.endpoint(paramcd)
    control = trial.control.label
    if len(trial.followup_visits) > 1:
        diff = result.lsmean_differences("TRT01P", by="AVISIT", reference=control, level=level)
    else:
        diff = result.lsmean_differences("TRT01P", reference=control, level=level)
        diff["AVISIT"] = trial.followup_visits[0].label
    weeks = {v.label: v.week for v in trial.visits}
    diff["TRT01P"] = diff["contrast"].str.rsplit(f" - {control}", n=1).str[0]
    table = diff.assign(PARAMCD=e.code, PARAM=e.label_with_unit, AVISITN=diff["AVISIT"].map(weeks),
                        n=result.n_obs, covariance=covariance_label(result),
                        covariance_note=result.fallback_reason or "")
    table = _back_transform(table, e) if back_transform else table.assign(scale="log: difference" if e.log
                                                                           else ORIGINAL_SCALE)
    return table[MODEL_COLUMNS + ["covariance", "covariance_note"]]


def mmrm_table(adlb: pd.DataFrame, trial: Trial, adsl: pd.DataFrame | None = None, covariance: str = "us",
               level: float = 0.95, codes: list[str] | None = None) -> pd.DataFrame:
    """MMRM LS-mean differences for every endpoint (or those in ``codes``) and follow-up visit (the mmrm.csv table).

    An endpoint for which no covariance structure converges, or whose design cannot be estimated,
    keeps its rows with missing estimates and the reason in ``covariance_note``.
    """
    out = []
    control = trial.control.label
    for e in (e for e in trial.endpoints if codes is None or e.code in codes):
        try:
            diff = mmrm_differences(fit_endpoint_mmrm(adlb, trial, e.code, adsl, covariance), trial, e.code, level)
            n_visit = analysis_data(adlb, trial, e.code, adsl)["AVISIT"].value_counts()
            out.append(diff.assign(n=diff["AVISIT"].map(n_visit).fillna(0).astype(int)))
        except (MMRMConvergenceError, ValueError) as exc:
            out.append(pd.DataFrame([{"PARAMCD": e.code, "PARAM": e.label_with_unit, "AVISIT": v.label, "AVISITN": v.week,
                                      "TRT01P": a.label, "contrast": f"{a.label} - {control}", "n": 0,
                                      "scale": _scale(e), "covariance": "not estimable", "covariance_note": str(exc)}
                                     for v in trial.followup_visits for a in trial.experimental_arms]))
    return pd.concat(out, ignore_index=True).reindex(columns=MODEL_COLUMNS + ["covariance", "covariance_note"])


def fallbacks(mmrm: pd.DataFrame) -> pd.DataFrame:
    """Endpoints whose MMRM did not use the requested covariance structure, with the reason."""
    f = mmrm[mmrm["covariance"].str.contains("fallback|not estimable", regex=True)]
    return f.drop_duplicates("PARAMCD")[["PARAMCD", "PARAM", "covariance", "covariance_note"]].reset_index(drop=True)


# ------------------------------------------------------------------ classes of a derived parameter

def parameter_classes(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str) -> pd.DataFrame:
    """The class of derived parameter ``paramcd`` (its registry classes) per participant (rows, with TRT01P) and
    visit (columns, visit labels); 'Not assessed' where there is no value at the visit."""
    classes_of = trial.derived(paramcd).classes.of
    values = adlb[adlb["PARAMCD"] == paramcd]
    wide = values.pivot(index="USUBJID", columns="AVISIT", values="AVAL")
    wide = wide.reindex(index=adsl["USUBJID"], columns=[v.label for v in trial.visits])
    classes = wide.apply(lambda col: classes_of(col.astype("Float64")).fillna(NOT_ASSESSED))
    classes.insert(0, "TRT01P", adsl.set_index("USUBJID")["TRT01P"].reindex(classes.index))
    return classes.reset_index()


def class_shift(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str,
                visit: str | None = None) -> pd.DataFrame:
    """Counts of participants by arm, baseline class and class at ``visit`` (default: the last visit) of derived
    parameter ``paramcd``, tidy: TRT01P, BASECLASS, POSTCLASS, AVISIT, n (every combination, zeros included)."""
    visit = visit or trial.last_visit.label
    cls = parameter_classes(adlb, adsl, trial, paramcd)
    levels = list(trial.derived(paramcd).classes.levels) + [NOT_ASSESSED]
    idx = pd.MultiIndex.from_product([[a.label for a in trial.arms], levels, levels],
                                     names=["TRT01P", "BASECLASS", "POSTCLASS"])
    counts = cls.groupby(["TRT01P", trial.baseline_visit.label, visit]).size()
    counts.index.names = idx.names
    out = counts.reindex(idx, fill_value=0).rename("n").reset_index()
    out.insert(3, "AVISIT", visit)
    return out


def proportion_best_class(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, paramcd: str,
                          level: float = 0.95) -> pd.DataFrame:
    """Participants in the best (first) class of derived parameter ``paramcd`` among those assessed, by arm and
    visit, with the Wilson CI. Columns keep the names of the first such table (``n_class_a``: in the best class)."""
    best = trial.derived(paramcd).classes.levels[0]
    cls = parameter_classes(adlb, adsl, trial, paramcd)
    rows = []
    for arm in trial.arms:
        c = cls[cls["TRT01P"] == arm.label]
        for v in trial.visits:
            assessed = int((c[v.label] != NOT_ASSESSED).sum())
            n_best = int((c[v.label] == best).sum())
            lo, hi = (proportion_confint(n_best, assessed, alpha=1 - level, method="wilson") if assessed
                      else (np.nan, np.nan))
            rows.append({"TRT01P": arm.label, "AVISIT": v.label, "AVISITN": v.week, "n_assessed": assessed,
                         "n_class_a": n_best, "proportion": n_best / assessed if assessed else np.nan,
                         "lower": lo, "upper": hi})
    return pd.DataFrame(rows)


def class_result_names(paramcd: str) -> tuple[str, str]:
    """The result-table names (files in _build/results/) of a classed parameter: its shift and best-class tables."""
    return f"{paramcd.lower()}_class_shift", f"{paramcd.lower()}_best_class"


# ------------------------------------------------------------------ multiplicity

def holm_adjust(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (statsmodels multipletests, method 'holm'); nan kept as nan."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def holm_table(model: pd.DataFrame, visit: str) -> pd.DataFrame:
    """Rows of a model table at ``visit`` (one family: every endpoint and arm) with Holm-adjusted p-values."""
    t = model[model["AVISIT"] == visit].copy().reset_index(drop=True)
    t["p_holm"] = holm_adjust(t["p_value"])
    return t


def secondary_holm(model: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """``holm_table`` of the secondary endpoints at the last visit: one family, every endpoint but a continuous
    primary endpoint (tested alone, first in the plan's fixed sequence)."""
    pe = trial.primary_endpoint
    secondary = model if pe.is_time_to_event else model[model["PARAMCD"] != pe.code]
    return holm_table(secondary, trial.last_visit.label)


def holm_significant(holm: pd.DataFrame, alpha: float) -> list[str]:
    """Endpoint codes (PARAMCD) of the rows of ``holm_table`` significant after Holm's adjustment."""
    return holm.loc[holm["p_holm"] < alpha, "PARAMCD"].tolist()


# ------------------------------------------------------------------ intercurrent events

def intercurrent_counts(adsl: pd.DataFrame, trial: Trial) -> dict[str, int]:
    """Participants who died (``n_deaths``), had each intercurrent event of the trial file (``n_<code in lower
    case>``), or withdrew (``n_withdrawn``: ended the study for any other reason, DCSREAS): the intercurrent
    events of the estimand."""
    reason = adsl["DCSREAS"]
    not_withdrawal = ["DEATH"] + [e.label.upper() for e in trial.intercurrent_events]
    return {"n_deaths": int((adsl["DTHFL"] == "Y").sum()),
            **{f"n_{code.lower()}": int((adsl[flag] == "Y").sum())
               for code, (_, flag) in intercurrent_columns(trial).items()},
            "n_withdrawn": int((~reason.isin(not_withdrawal) & reason.notna()).sum())}


# ------------------------------------------------------------------ results

def outcome_results(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> dict[str, pd.DataFrame]:
    """Every tidy table of the outcomes chapter, keyed by its file name in _build/results/."""
    mmrm = mmrm_table(adlb, trial, adsl)
    last = trial.last_visit.label
    out = {
        "lab_by_visit": lab_by_visit(adlb, trial),
        "ancova": ancova(adlb, trial, adsl),
        "mmrm": mmrm,
        "holm": secondary_holm(mmrm, trial),
    }
    for p in trial.classed_scores:
        shift, best = class_result_names(p.code)
        out[shift] = class_shift(adlb, adsl, trial, p.code, last)
        out[best] = proportion_best_class(adlb, adsl, trial, p.code)
    return out
