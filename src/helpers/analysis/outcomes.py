"""Outcomes at each timepoint: lab-by-visit summaries, ANCOVA per visit, MMRM per endpoint,
Child-Pugh class shift, Holm adjustment, and the tidy result tables the chapter exports.

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
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from helpers.data import scores
from helpers.analysis.mmrm import MMRMConvergenceError, MMRMFallbackWarning, MMRMResult, fit_mmrm
from helpers.report.tables import fixed, format_p
from helpers.trial import Endpoint, Trial

LOG_SCALE = "log: ratio of geometric means"
ORIGINAL_SCALE = "original: difference"
MODEL_COLUMNS = ["PARAMCD", "PARAM", "AVISIT", "AVISITN", "TRT01P", "contrast", "n", "estimate", "se",
                 "df", "lower", "upper", "p_value", "scale"]
NOT_ASSESSED = "Not assessed"
COVARIANCE_NAMES = {"us": "unstructured", "toeph": "heterogeneous Toeplitz", "ar1h": "heterogeneous AR(1)",
                    "ar1": "AR(1)", "cs": "compound symmetry"}


# ------------------------------------------------------------------ descriptive summaries

def _summary(values: pd.Series) -> dict:
    v = values.dropna().to_numpy(dtype=float)
    if not len(v):
        return {"n": 0, "mean": np.nan, "sd": np.nan, "median": np.nan, "q1": np.nan, "q3": np.nan}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"n": len(v), "mean": v.mean(), "sd": v.std(ddof=1) if len(v) > 1 else np.nan,
            "median": med, "q1": q1, "q3": q3}


def lab_by_visit(adlb: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """n, mean, SD, median, Q1, Q3 of the value (AVAL) and of the change from baseline (CHG), by
    endpoint, arm and visit: the standard lab-by-visit table, tidy (one row per cell and variable).

    Quartiles are numpy's default (linear interpolation, Hyndman and Fan type 7); SD uses n - 1.
    """
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
                                 "TRT01P": arm.label, "variable": var} | _summary(cell[var]))
    return pd.DataFrame(rows)


def _decimals(values: pd.Series, most: int = 2) -> int:
    """Decimals the data are recorded with (at most ``most``)."""
    v = values.dropna().to_numpy(dtype=float)
    return next((d for d in range(most + 1) if np.allclose(v, np.round(v, d))), most)


def lab_by_visit_report(summary: pd.DataFrame, adlb: pd.DataFrame, trial: Trial, header: dict[str, str]) -> pd.DataFrame:
    """Report layout of ``lab_by_visit``: rows endpoint x visit x statistic, columns value and change per
    arm (N in the header); statistics with one decimal more than the data are recorded with."""
    out = []
    for e in trial.endpoints:
        dec = _decimals(adlb.loc[adlb["PARAMCD"] == e.code, "AVAL"]) + 1
        s = summary[summary["PARAMCD"] == e.code]
        for v in trial.visits:
            stats_rows = {"n": {}, "Mean (SD)": {}, "Median [Q1, Q3]": {}}
            for arm in trial.arms:
                for var, what in (("AVAL", "value"), ("CHG", "change")):
                    cell = s[(s["AVISITN"] == v.week) & (s["TRT01P"] == arm.label) & (s["variable"] == var)]
                    col = f"{header[arm.label]}: {what}"
                    if cell.empty:
                        for k in stats_rows:
                            stats_rows[k][col] = ""
                        continue
                    r = cell.iloc[0]
                    stats_rows["n"][col] = f"{int(r['n'])}"
                    stats_rows["Mean (SD)"][col] = (f"{r['mean']:.{dec}f} ({r['sd']:.{dec}f})" if r["n"] > 1
                                                    else f"{r['mean']:.{dec}f}" if r["n"] else "")
                    stats_rows["Median [Q1, Q3]"][col] = (f"{r['median']:.{dec}f} [{r['q1']:.{dec}f}, {r['q3']:.{dec}f}]"
                                                          if r["n"] else "")
            for k, cols in stats_rows.items():
                out.append({"Endpoint": e.label_with_unit, "Visit": v.label, "Statistic": k} | cols)
    return pd.DataFrame(out)


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
    arms = [trial.arm_labels[trial.control_arm]] + [a.label for a in trial.arms if a.code != trial.control_arm]
    d["TRT01P"] = pd.Categorical(d["TRT01P"], categories=arms)
    strata = list(trial.randomization.get("strata") or [])
    if strata:
        if adsl is None or not set(strata) <= set(adsl.columns):
            raise ValueError(f"stratification factors {strata} must be columns of ADSL")
        d = d.merge(adsl[["USUBJID"] + strata], on="USUBJID", how="left")
    return d.reset_index(drop=True)


def _strata_terms(trial: Trial) -> str:
    return "".join(f" + C({s})" for s in trial.randomization.get("strata") or [])


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
    control = trial.arm_labels[trial.control_arm]
    rows = []
    for e in trial.endpoints:
        d = analysis_data(adlb, trial, e.code, adsl)
        for v in trial.followup_visits:
            dv = d[d["AVISITN"] == v.week]
            for arm in (a for a in trial.arms if a.code != trial.control_arm):
                base = {"PARAMCD": e.code, "PARAM": e.label_with_unit, "AVISIT": v.label, "AVISITN": v.week,
                        "TRT01P": arm.label, "contrast": f"{arm.label} - {control}", "n": len(dv)}
                rows.append(base | _ols_difference(dv, arm.label, trial, level))
    table = pd.DataFrame(rows)
    return _finish(table, trial)


def _ols_difference(d: pd.DataFrame, arm: str, trial: Trial, level: float) -> dict:
    empty = {k: np.nan for k in ("estimate", "se", "df", "lower", "upper", "p_value")}
    counts = d["TRT01P"].value_counts()
    if counts.get(arm, 0) == 0 or counts.get(trial.arm_labels[trial.control_arm], 0) == 0:
        return empty
    d = d.assign(TRT01P=d["TRT01P"].cat.remove_unused_categories())
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
                        reml=True, reference={"TRT01P": trial.arm_labels[trial.control_arm]},
                        visit_order=[v.label for v in trial.followup_visits])


def covariance_label(result: MMRMResult) -> str:
    """The structure used, and the one requested when a fallback happened: 'toeph (fallback from us)'."""
    if result.covariance == result.covariance_requested:
        return result.covariance
    return f"{result.covariance} (fallback from {result.covariance_requested})"


def mmrm_differences(result: MMRMResult, trial: Trial, paramcd: str, level: float = 0.95) -> pd.DataFrame:
    """LS-mean differences (each arm minus control) per follow-up visit from a fitted endpoint MMRM,
    back-transformed for log endpoints, with the covariance structure used."""
    e = trial.endpoint(paramcd)
    control = trial.arm_labels[trial.control_arm]
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
    return _back_transform(table, e)[MODEL_COLUMNS + ["covariance", "covariance_note"]]


def mmrm_table(adlb: pd.DataFrame, trial: Trial, adsl: pd.DataFrame | None = None, covariance: str = "us",
               level: float = 0.95) -> pd.DataFrame:
    """MMRM LS-mean differences for every endpoint and follow-up visit (the mmrm.csv table).

    An endpoint for which no covariance structure converges, or whose design cannot be estimated,
    keeps its rows with missing estimates and the reason in ``covariance_note``.
    """
    out = []
    control = trial.arm_labels[trial.control_arm]
    for e in trial.endpoints:
        try:
            diff = mmrm_differences(fit_endpoint_mmrm(adlb, trial, e.code, adsl, covariance), trial, e.code, level)
            n_visit = analysis_data(adlb, trial, e.code, adsl)["AVISIT"].value_counts()
            out.append(diff.assign(n=diff["AVISIT"].map(n_visit).fillna(0).astype(int)))
        except (MMRMConvergenceError, ValueError) as exc:
            out.append(pd.DataFrame([{"PARAMCD": e.code, "PARAM": e.label_with_unit, "AVISIT": v.label, "AVISITN": v.week,
                                      "TRT01P": a.label, "contrast": f"{a.label} - {control}", "n": 0,
                                      "scale": _scale(e), "covariance": "not estimable", "covariance_note": str(exc)}
                                     for v in trial.followup_visits for a in trial.arms
                                     if a.code != trial.control_arm]))
    return pd.concat(out, ignore_index=True).reindex(columns=MODEL_COLUMNS + ["covariance", "covariance_note"])


def fallbacks(mmrm: pd.DataFrame) -> pd.DataFrame:
    """Endpoints whose MMRM did not use the requested covariance structure, with the reason."""
    f = mmrm[mmrm["covariance"].str.contains("fallback|not estimable", regex=True)]
    return f.drop_duplicates("PARAMCD")[["PARAMCD", "PARAM", "covariance", "covariance_note"]].reset_index(drop=True)


# ------------------------------------------------------------------ Child-Pugh class

def child_pugh_classes(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Child-Pugh class per participant (rows, with TRT01P) and visit (columns, visit labels);
    'Not assessed' where there is no score at the visit."""
    cp = adlb[adlb["PARAMCD"] == "CPSCORE"]
    wide = cp.pivot(index="USUBJID", columns="AVISIT", values="AVAL")
    wide = wide.reindex(index=adsl["USUBJID"], columns=[v.label for v in trial.visits])
    classes = wide.apply(lambda col: scores.child_pugh_class(col.astype("Float64")).fillna(NOT_ASSESSED))
    classes.insert(0, "TRT01P", adsl.set_index("USUBJID")["TRT01P"].reindex(classes.index))
    return classes.reset_index()


def child_pugh_shift(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, visit: str | None = None) -> pd.DataFrame:
    """Counts of participants by arm, baseline class and class at ``visit`` (default: the last visit),
    tidy: TRT01P, BASECLASS, POSTCLASS, n (every combination, zeros included)."""
    visit = visit or trial.visits[-1].label
    cls = child_pugh_classes(adlb, adsl, trial)
    levels = ["A", "B", "C", NOT_ASSESSED]
    idx = pd.MultiIndex.from_product([[a.label for a in trial.arms], levels, levels],
                                     names=["TRT01P", "BASECLASS", "POSTCLASS"])
    counts = cls.groupby(["TRT01P", trial.baseline_visit.label, visit]).size()
    counts.index.names = idx.names
    out = counts.reindex(idx, fill_value=0).rename("n").reset_index()
    out.insert(3, "AVISIT", visit)
    return out


def shift_report(shift: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """Report layout of a shift table: one row per arm and baseline class, one column per class at the visit."""
    wide = shift.pivot_table(index=["TRT01P", "BASECLASS"], columns="POSTCLASS", values="n", sort=False)
    wide = wide[wide.sum(axis=1) > 0].astype(int)
    wide["Total"] = wide.sum(axis=1)
    wide.columns.name = None
    wide = wide.reset_index()
    wide["TRT01P"] = wide["TRT01P"].map(header)
    visit = shift["AVISIT"].iloc[0]
    return wide.rename(columns={"TRT01P": "Arm", "BASECLASS": "Baseline class"} |
                       {c: f"{visit}: {c}" for c in ("A", "B", "C", NOT_ASSESSED)})


def proportion_class_a(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, level: float = 0.95) -> pd.DataFrame:
    """Participants in Child-Pugh class A among those assessed, by arm and visit, with the Wilson CI."""
    cls = child_pugh_classes(adlb, adsl, trial)
    rows = []
    for arm in trial.arms:
        c = cls[cls["TRT01P"] == arm.label]
        for v in trial.visits:
            assessed = int((c[v.label] != NOT_ASSESSED).sum())
            n_a = int((c[v.label] == "A").sum())
            lo, hi = proportion_confint(n_a, assessed, alpha=1 - level, method="wilson") if assessed else (np.nan, np.nan)
            rows.append({"TRT01P": arm.label, "AVISIT": v.label, "AVISITN": v.week, "n_assessed": assessed,
                         "n_class_a": n_a, "proportion": n_a / assessed if assessed else np.nan,
                         "lower": lo, "upper": hi})
    return pd.DataFrame(rows)


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


# ------------------------------------------------------------------ results

def outcome_results(adlb: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> dict[str, pd.DataFrame]:
    """Every tidy table of the outcomes chapter, keyed by its file name in _build/results/."""
    mmrm = mmrm_table(adlb, trial, adsl)
    last = trial.visits[-1].label
    out = {
        "lab_by_visit": lab_by_visit(adlb, trial),
        "ancova": ancova(adlb, trial, adsl),
        "mmrm": mmrm,
        "holm": holm_table(mmrm, last),
    }
    if "CPSCORE" in trial.derived_scores:
        out["child_pugh_shift"] = child_pugh_shift(adlb, adsl, trial, last)
        out["child_pugh_class_a"] = proportion_class_a(adlb, adsl, trial)
    return out


NO_CHILD_PUGH = "not derived in this trial: its laboratory panel lacks a component (bilirubin, albumin, INR)"


def class_a_text(results: dict[str, pd.DataFrame], visit: str) -> str:
    """Participants in Child-Pugh class A at a visit, by arm, as the prose reads it."""
    if "child_pugh_class_a" not in results:
        return NO_CHILD_PUGH
    rows = results["child_pugh_class_a"].query("AVISIT == @visit")
    return "; ".join(f"{r.TRT01P.lower()} {r.n_class_a} of {r.n_assessed} assessed ({100 * r.proportion:.0f}%)"
                     for r in rows.itertuples())


def model_report(model: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Report layout of a model table: endpoint, visit, effect with 95% CI (ratio or difference), p-value."""
    def effect(r):
        if pd.isna(r["estimate"]):
            return "not estimable"
        return f"{r['estimate']:.{digits}f} ({r['lower']:.{digits}f} to {r['upper']:.{digits}f})"
    out = pd.DataFrame({
        "Endpoint": model["PARAM"], "Visit": model["AVISIT"], "Comparison": model["contrast"],
        "Effect": np.where(model["scale"] == LOG_SCALE, "ratio", "difference"),
        "Estimate (95% CI)": model.apply(effect, axis=1), "n": model["n"],
        "df": model["df"].map(lambda x: "" if pd.isna(x) else f"{x:.1f}"),
        "P": model["p_value"].map(format_p)})
    if "p_holm" in model:
        out["P (Holm)"] = model["p_holm"].map(format_p)
    if "covariance" in model:
        out["Covariance"] = model["covariance"]
    return out


def effect_text(row: pd.Series, unit: str = "", digits: int = 2) -> str:
    """One model row as prose: 'ratio 0.79 (95% CI 0.64 to 0.98; P = 0.035)' or
    'difference -0.99 points (95% CI -2.34 to 0.35; P = 0.141)'."""
    if pd.isna(row["estimate"]):
        return "not estimable"
    kind = "ratio of geometric means" if row["scale"] == LOG_SCALE else "difference"
    u = f" {unit}" if unit and unit != "1" and row["scale"] != LOG_SCALE else ""
    p = format_p(row["p_value"])
    return (f"{kind} {row['estimate']:.{digits}f}{u} (95% CI {row['lower']:.{digits}f} to {row['upper']:.{digits}f}; "
            f"P {'< ' + p[1:] if p.startswith('<') else '= ' + p})")


def key_secondary_numbers(mmrm: pd.DataFrame, trial: Trial) -> dict[str, str]:
    """The key secondary endpoint's MMRM effect at the last visit and its covariance, as the prose reads them;
    'not estimable' with the reason when no participant was observed there (an early interim look)."""
    last = trial.visits[-1].label
    rows = mmrm[(mmrm["PARAMCD"] == trial.key_secondary) & (mmrm["AVISIT"] == last)]
    if rows.empty:
        when = " by the data cut-off" if trial.is_interim else ""
        return {"key_effect": f"not estimable: no participant was observed at {last.lower()}{when}",
                "key_covariance": "none"}
    key = rows.iloc[0]
    return {"key_effect": effect_text(key, trial.endpoint(trial.key_secondary).unit),
            "key_covariance": COVARIANCE_NAMES.get(key["covariance"], key["covariance"])}


def fallback_sentence(mmrm: pd.DataFrame) -> str:
    """Prose on the covariance structures used: all as requested, or which endpoints fell back to what."""
    f = fallbacks(mmrm)
    if f.empty:
        return "The unstructured covariance matrix converged for every endpoint; no fallback was needed."
    parts = [f"{r.PARAM}: {COVARIANCE_NAMES.get(r.covariance.split(' ')[0], r.covariance)}" for r in f.itertuples()]
    return ("The unstructured fit did not converge for every endpoint, and the next structure in the order "
            "unstructured, heterogeneous Toeplitz, heterogeneous AR(1), AR(1), compound symmetry was used: "
            + "; ".join(parts) + ".")


def mean_ci_report(summary: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """Report layout of ``mean_ci_by_visit``: endpoint, statistic, arm (N), visit, n, mean and 95% CI."""
    return pd.DataFrame({
        "Endpoint": summary["PARAM"], "Statistic": summary["statistic"], "Arm": summary["TRT01P"].map(header),
        "Visit": summary["AVISIT"], "n": summary["n"], "Mean": summary["mean"].round(2),
        "95% CI": [f"{lo:.2f} to {hi:.2f}" for lo, hi in zip(summary["lower"], summary["upper"])],
    })


def class_a_report(class_a: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """Report layout of ``proportion_class_a``: arm (N), visit, n in class A / assessed (%), Wilson 95% CI in %."""
    assessed = class_a["n_assessed"] > 0
    return pd.DataFrame({
        "Arm": class_a["TRT01P"].map(header), "Visit": class_a["AVISIT"],
        "Class A, n / assessed (%)": [f"{a} / {n} ({fixed(100 * p, 0)}%)" if n else "0 / 0" for a, n, p in
                                      zip(class_a["n_class_a"], class_a["n_assessed"], class_a["proportion"])],
        "95% CI (%)": [f"{fixed(100 * lo, 0)} to {fixed(100 * hi, 0)}" if ok else "" for lo, hi, ok in
                       zip(class_a["lower"], class_a["upper"], assessed)],
    })
