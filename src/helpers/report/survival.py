"""Chapter 5 (survival) for the reader: the numbers its prose quotes and its tables, from ``analysis.survival``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import survival
from helpers.report.cohort import arm_header
from helpers.report.findings import TEST_NAMES
from helpers.report.prose import estimate_text, format_p, whole_weeks
from helpers.report.tables import JournalTable, journal_table, n_pct
from helpers.trial import Trial

ENDPOINTS = ("OS", "TFS")
ADEQUATE_EVENTS = "The number of events is adequate for the hazard ratio."
SUMMARY_CAPTIONS = {
    "OS": ("tab-os-summary", "Overall survival to day {horizon}: estimates and tests",
           ("Survival difference: arm minus control, Wald interval with Greenwood standard errors. Hazard ratio "
            "below 1 favours the first arm named. Fisher's exact test: two-sided, on participants alive or dead at the "
            "horizon; Events / N for it counts those with a known status.")),
    "TFS": ("tab-tfs-summary", "Transplant-free survival to day {horizon}: estimates and tests",
            "As for overall survival, with death or liver transplantation as the event."),
}


def few_events_caution(n_events: int, threshold: int = survival.FEW_EVENTS) -> str:
    """A caution for the text when the Cox model rests on few events; empty otherwise."""
    if n_events >= threshold:
        return ""
    return (f"With only {n_events} event(s) (fewer than {threshold}), the hazard ratio is imprecise and its "
            "Wald interval unreliable; read it with the Kaplan-Meier curves and the exact test.")


def prose_numbers(results: pd.DataFrame, paramcd: str) -> dict[str, str | int]:
    """The numbers the chapter's text quotes for one endpoint, keyed '<paramcd>_<what>' for myst-nb glue."""
    p = paramcd.lower()
    r = results[results["PARAMCD"] == paramcd]

    def rows(prefix):
        return r[r["ANALYSIS"].str.startswith(prefix)]

    km, diff = rows(survival.KM_SURVIVAL), rows(survival.KM_DIFFERENCE)
    cox, fisher = rows(survival.COX), rows(survival.FISHER)
    lr = rows(survival.LOGRANK).iloc[0]
    return {
        f"{p}_surv": "; ".join(f"{a} {estimate_text(e, lo, hi, scale=100, digits=1, unit='%')}"
                               for a, e, lo, hi in zip(km["ARM"], km["ESTIMATE"], km["LCL"], km["UCL"])),
        f"{p}_diff": "; ".join(f"{a} minus {ref} {estimate_text(e, lo, hi, scale=100, digits=1)} "
                               "percentage points"
                               for a, ref, e, lo, hi in zip(diff["ARM"], diff["REFERENCE"], diff["ESTIMATE"],
                                                            diff["LCL"], diff["UCL"])),
        f"{p}_logrank": (f"chi-square {lr.ESTIMATE:.2f}, P = {format_p(lr.PVALUE)}" if np.isfinite(lr.ESTIMATE)
                         else "not estimable: no events in either arm"),
        f"{p}_hr": "; ".join(f"{a} vs {ref} {estimate_text(e, lo, hi)}"
                             for a, ref, e, lo, hi in zip(cox["ARM"], cox["REFERENCE"], cox["ESTIMATE"], cox["LCL"],
                                                          cox["UCL"])),
        f"{p}_events": int(lr.EVENTS),
        f"{p}_caution": few_events_caution(int(lr.EVENTS)) or ADEQUATE_EVENTS,
        f"{p}_fisher": "; ".join(f"{a} vs {ref} " + (f"P = {format_p(pv)}" if pd.notna(pv) else
                                                          f"P {survival.FISHER_NOT_ESTIMABLE}")
                                 for a, ref, pv in zip(fisher["ARM"], fisher["REFERENCE"], fisher["PVALUE"])),
    }


def chapter_numbers(results: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, source: str) -> dict[str, str | int]:
    """Every number and phrase the survival chapter's prose glues: both endpoints' results, the data
    source, the horizon, the transplant rule, the control arm and the number randomized."""
    out = {}
    for paramcd in ENDPOINTS:
        out |= prose_numbers(results, paramcd)
    return out | {
        "source": source, "horizon_days": trial.horizon_days, "horizon_weeks": whole_weeks(trial.horizon_days),
        "primary_test": TEST_NAMES[trial.primary_test],
        "transplant_rule": ("censored at the date of transplantation" if trial.censors_transplant
                            else "not censored (follow-up continues after transplantation)"),
        "control": trial.control.label, "n_randomized": len(adsl),
    }


def summary_table(results: pd.DataFrame, paramcd: str) -> pd.DataFrame:
    """Report table of one endpoint's rows of ``survival_results``: analysis, arm or comparison, estimate (95% CI), P."""
    d = results[results["PARAMCD"] == paramcd]
    rows = []
    for r in d.itertuples():
        what = r.ARM if not r.REFERENCE else f"{r.ARM} vs {r.REFERENCE}"
        if r.ANALYSIS.startswith(survival.KM_SURVIVAL):
            label = "Kaplan-Meier survival at the horizon, % (log-log CI)"
            est = estimate_text(r.ESTIMATE, r.LCL, r.UCL, scale=100, digits=1)
        elif r.ANALYSIS.startswith(survival.KM_DIFFERENCE):
            what = f"{r.ARM} minus {r.REFERENCE}"
            label = "Difference in survival, percentage points (Greenwood CI)"
            est = estimate_text(r.ESTIMATE, r.LCL, r.UCL, scale=100, digits=1)
        elif r.ANALYSIS == survival.LOGRANK:
            label, est, what = "Log-rank test, chi-square", estimate_text(r.ESTIMATE), "all arms"
        elif r.ANALYSIS == survival.COX:
            label, est = "Hazard ratio, Cox model with Efron ties (Wald CI)", estimate_text(r.ESTIMATE, r.LCL, r.UCL)
        else:
            label, est = "Odds ratio of being event-free at the horizon, Fisher's exact test", estimate_text(r.ESTIMATE)
        not_estimable = r.ANALYSIS == survival.FISHER and pd.isna(r.PVALUE)
        rows.append({"Analysis": label, "Arm or comparison": what,
                     "Estimate (95% CI)": survival.FISHER_NOT_ESTIMABLE if not_estimable else est,
                     "P value": "not estimable" if not_estimable else format_p(r.PVALUE),
                     "Events / N": f"{r.EVENTS} / {r.N}"})
    return pd.DataFrame(rows)


def event_counts_table(counts: pd.DataFrame, header: dict[str, str], event: str = "Deaths") -> pd.DataFrame:
    """``event_counts`` for the report: arm with N in its label, events, censorings by reason in words."""
    out = counts.assign(ARM=counts["ARM"].map(header)).drop(columns="N")
    return out.rename(columns=lambda col: {"ARM": "Arm", "EVENTS": event, "CENSORED": "Censored"}.get(
        col, col.replace("CENSORED: ", "Censored: ").capitalize() if col.startswith("CENSORED: ") else col))


def vital_status_table(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, header: dict[str, str],
                       paramcd: str = "OS") -> pd.DataFrame:
    """Status at the horizon by arm, n (%) of those randomized: event-free, event, unknown (``status_at_horizon``)."""
    st = survival.status_at_horizon(adtte, adsl, trial, paramcd)
    names = {survival.EVENT_FREE: "Alive", survival.EVENT: "Died"} if paramcd == "OS" else {}
    rows = []
    for arm in trial.arms:
        s = st.loc[st["ARM"] == arm.label, "STATUS"]
        rows.append({"Arm": header[arm.label], **{names.get(k, k): n_pct(int((s == k).sum()), len(s))
                                                 for k in survival.STATUSES}})
    return pd.DataFrame(rows)


def km_plot_table(km: pd.DataFrame) -> pd.DataFrame:
    """The numbers the Kaplan-Meier figure plots: per arm and event time, at risk, events, S(t) and its CI (%)."""
    d = km[(km["N_EVENT"] > 0) | (km["TIME"] == 0)]
    return pd.DataFrame({"Arm": d["ARM"], "Day": d["TIME"].astype(int), "At risk": d["N_RISK"],
                         "Events": d["N_EVENT"], "Survival (%)": (100 * d["SURV"]).round(1),
                         "95% CI (%)": [("" if np.isnan(lo) else f"{100 * lo:.1f} to {100 * hi:.1f}")
                                        for lo, hi in zip(d["LCL"], d["UCL"])]})


# ------------------------------------------------------------------ the chapter's tables

def show_event_counts(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> JournalTable:
    """deaths and censorings by arm (overall survival)."""
    header = arm_header(adsl, trial)
    return journal_table(
        event_counts_table(survival.event_counts(adtte, trial, "OS"), header),
        f"Deaths and censorings to day {trial.horizon_days} by arm (overall survival)", "tab-os-events",
        notes="Alive at horizon: followed beyond the horizon without the event, censored at the horizon. "
              "Last known alive: follow-up ended earlier (study completed just before the horizon, withdrawal or loss "
              "to follow-up). Liver transplant: censored at transplantation.")


def show_km_numbers(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> JournalTable:
    """the Kaplan-Meier estimates of overall survival the figure plots."""
    header = arm_header(adsl, trial)
    table = km_plot_table(survival.km_by_arm(adtte, trial, "OS"))
    return journal_table(
        table.assign(Arm=table["Arm"].map(header)),
        "Kaplan-Meier estimates of overall survival at each death (the data of the figure above)", "tab-km-os",
        notes="Day: days since randomization (day 1). 95% CI: pointwise, log(-log) transform of the Greenwood variance.")


def show_summary(results: pd.DataFrame, trial: Trial, paramcd: str) -> JournalTable:
    """one endpoint's estimates and tests."""
    name, caption, notes = SUMMARY_CAPTIONS[paramcd]
    return journal_table(summary_table(results, paramcd), caption.format(horizon=trial.horizon_days), name, notes=notes)


def show_vital_status(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> JournalTable:
    """vital status at the horizon by arm, the data of Fisher's exact test."""
    return journal_table(
        vital_status_table(adtte, adsl, trial, arm_header(adsl, trial), "OS"),
        f"Vital status at day {trial.horizon_days} by arm, n (%) (the data of Fisher's exact test)", "tab-vital-status",
        notes="Unknown: censored before the horizon without completing follow-up (liver transplantation, withdrawal); "
              "left out of the test.")


def show_intercurrent_events(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> JournalTable:
    """intercurrent events before each visit and missed visits, by arm."""
    header = arm_header(adsl, trial)
    ice = survival.intercurrent_events(adsl, adlb, trial)
    return journal_table(
        ice.assign(Arm=ice["Arm"].map(header)).drop(columns="Randomized"),
        "Intercurrent events before each visit and missed visits, by arm (as randomized)", "tab-intercurrent",
        notes="Death, liver transplant, withdrawal: follow-up ended for that reason before the visit's target day "
              "(cumulative). Expected: randomized minus those. Missed: expected but no laboratory record at the visit.")
