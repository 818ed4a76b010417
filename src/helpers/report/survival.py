"""Chapter 5 (survival) for the reader: the numbers its prose quotes and its tables, from ``analysis.survival``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import survival
from helpers.report.cohort import arm_header
from helpers.report.findings import primary_test_text
from helpers.report.prose import estimate_text, fisher_name, format_p, km_name, primary_what, whole_weeks, word_list
from helpers.report.tables import JournalTable, journal_table, n_pct
from helpers.trial import TimeToEvent, Trial

ADEQUATE_EVENTS = "The number of events is adequate for the hazard ratio."
LEAD = "tte"  # the lead time-to-event endpoint's tables and figure: tab-tte-summary, fig-km-tte, ...
SUMMARY_NOTES = ("Difference: arm minus control, Wald interval with Greenwood standard errors. Hazard ratio "
                 "below 1 favours the first arm named. Fisher's exact test: two-sided, on participants whose status at "
                 "the horizon is known (event-free or event); Events / N for it counts those.")


def reference_key(trial: Trial, paramcd: str) -> str:
    """The key of an endpoint's tables and figure: ``LEAD`` for the lead time-to-event endpoint (the chapter's text
    cites its tables by name), else the code in lower case."""
    return LEAD if paramcd == trial.lead_tte.code else paramcd.lower()


def event_noun(trial: Trial, paramcd: str) -> str:
    """'deaths' when death is the endpoint's only event, else 'events'."""
    return "deaths" if trial.tte(paramcd).events == ("DEATH",) else "events"


def role_text(trial: Trial) -> str:
    """The lead time-to-event endpoint's place in the analysis plan: the registered primary outcome, or a secondary
    endpoint beside a continuous primary analysed in the outcomes chapter."""
    lead, pe = trial.lead_tte, trial.primary_endpoint
    if pe.is_time_to_event:
        return (f"The registered primary outcome is {lead.label.lower()}: the time from randomization to "
                f"{events_text(lead, trial)}. This chapter estimates it by arm and compares the arms.")
    return (f"The primary endpoint of this trial is the {primary_what(trial)}, analysed in the chapter on outcomes at "
            f"each visit. {lead.label}, the time from randomization to {events_text(lead, trial)}, is a secondary "
            "endpoint: this chapter estimates it by arm and compares the arms as supportive evidence.")


def tests_role_text(trial: Trial) -> str:
    """Which of the chapter's tests the plan registered: the primary test of a time-to-event primary endpoint (the
    others supportive), or none of them when the primary endpoint is continuous."""
    pe = trial.primary_endpoint
    if pe.is_time_to_event:
        return f"Registered primary test: {primary_test_text(trial)}; the other tests are supportive."
    return ("None of these tests is confirmatory: the registered primary test is the MMRM contrast of the "
            f"{primary_what(trial)}, not a test of this endpoint.")


def summary_measures_text(trial: Trial) -> str:
    """The estimand's summary measures of the lead time-to-event endpoint, with the registered test when it is the
    primary endpoint."""
    lead = trial.lead_tte
    measures = (f"the Kaplan-Meier {km_name(trial, lead.code)} at the horizon per arm and its difference "
                f"against {trial.control.label}, the hazard ratio")
    if trial.primary_endpoint.is_time_to_event:
        return f"{measures}, and, as registered, the primary test: {primary_test_text(trial)}."
    return (f"{measures}, the log-rank test and {fisher_name(trial, lead.code)}, all supportive (the primary "
            "endpoint is continuous; its registered test is in the chapter on outcomes at each visit).")


def no_events_text(trial: Trial, paramcd: str) -> str:
    """What the chapter says instead of estimates when the endpoint has no event: 'No deaths were recorded; ...'."""
    return f"No {event_noun(trial, paramcd)} were recorded; {km_name(trial, paramcd)} estimates and tests are not shown (not estimable)"


def events_text(tte: TimeToEvent, trial: Trial) -> str:
    """'death or kidney failure, whichever came first': the endpoint's events in words."""
    labels = [trial.event_label(c).lower() for c in tte.events]
    return labels[0] if len(labels) == 1 else f"{word_list(labels, 'or')}, whichever came first"


def censoring_text(tte: TimeToEvent, trial: Trial) -> str:
    """How the endpoint's intercurrent events are handled, for the estimand: 'Kidney failure is censored at its
    date, as the trial file specifies (...); withdrawal and loss to follow-up ...'."""
    parts = []
    for e in trial.intercurrent_events:
        if e.code in tte.censors:
            parts.append(f"{e.label} is censored at its date, as the trial file specifies (a hypothetical strategy: "
                         f"the endpoint as if no {e.label.lower()} had happened)")
        elif e.code in tte.events:
            parts.append(f"{e.label} counts as an event, as the trial file specifies (a composite strategy)")
        else:
            parts.append(f"{e.label} does not end follow-up for this endpoint (a treatment-policy strategy)")
    parts.append("withdrawal and loss to follow-up are censored at the last date the participant was known alive")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def few_events_caution(n_events: int, threshold: int = survival.FEW_EVENTS) -> str:
    """A caution for the text when the Cox model rests on few events; empty otherwise."""
    if n_events >= threshold:
        return ""
    return (f"With only {n_events} event(s) (fewer than {threshold}), the hazard ratio is imprecise and its "
            "Wald interval unreliable; read it with the Kaplan-Meier curves and the exact test.")


def prose_numbers(results: pd.DataFrame, paramcd: str, trial: Trial, prefix: str | None = None) -> dict[str, str | int]:
    """The numbers the chapter's text quotes for one endpoint, keyed '<prefix>_<what>' (default prefix: the code in
    lower case) for myst-nb glue. Without any event every estimate is 'not estimable' and says why."""
    p = paramcd.lower() if prefix is None else prefix
    r = results[results["PARAMCD"] == paramcd]
    noun = event_noun(trial, paramcd)
    if int(r.loc[r["ANALYSIS"] == survival.LOGRANK, "EVENTS"].sum()) == 0:
        why = f"not estimable: no {noun} were recorded"
        return {f"{p}_surv": why, f"{p}_diff": why, f"{p}_logrank": why, f"{p}_hr": why,
                f"{p}_events": f"0 {noun}", f"{p}_caution": "", f"{p}_fisher": why}

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
        f"{p}_events": f"{int(lr.EVENTS)} {noun}",
        f"{p}_caution": few_events_caution(int(lr.EVENTS)) or ADEQUATE_EVENTS,
        f"{p}_fisher": "; ".join(f"{a} vs {ref} " + (f"P = {format_p(pv)}" if pd.notna(pv) else
                                                          f"P {survival.FISHER_NOT_ESTIMABLE}")
                                 for a, ref, pv in zip(fisher["ARM"], fisher["REFERENCE"], fisher["PVALUE"])),
    }


def other_endpoints(trial: Trial) -> list[TimeToEvent]:
    """The time-to-event endpoints after the lead one, in the trial file's order."""
    return [t for t in trial.time_to_event if t.code != trial.lead_tte.code]


def chapter_numbers(results: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, source: str) -> dict[str, str | int]:
    """Every number and phrase the survival chapter's prose glues: the lead time-to-event endpoint's results (keys
    'lead_...'), its definition and censoring rules, the other endpoints, the data source, the horizon, the control
    arm and the number randomized."""
    lead = trial.lead_tte
    others = other_endpoints(trial)
    return prose_numbers(results, lead.code, trial, "lead") | {
        "source": source, "horizon_days": trial.horizon_days, "horizon_weeks": whole_weeks(trial.horizon_days),
        "primary_test": primary_test_text(trial), "role": role_text(trial), "summary_measures": summary_measures_text(trial),
        "tests_role": tests_role_text(trial),
        "lead_estimate": km_name(trial, lead.code).capitalize(), "lead_fisher_name": fisher_name(trial, lead.code),
        "lead_label": lead.label, "lead_variable": f"time from randomization to {events_text(lead, trial)}",
        "lead_censoring": censoring_text(lead, trial),
        "other_endpoints": (" ".join(f"{t.label} ({events_text(t, trial)}) is reported as a further endpoint."
                                     for t in others) or "It is the only time-to-event endpoint of the trial file."),
        "control": trial.control.label, "n_randomized": len(adsl),
    }


def other_endpoint_text(results: pd.DataFrame, tte: TimeToEvent, trial: Trial) -> str:
    """The paragraph of a further time-to-event endpoint (markdown): its events and results."""
    n = prose_numbers(results, tte.code, trial, "x")
    if n["x_caution"] == "" and n["x_events"].startswith("0 "):
        return f"{events_text(tte, trial).capitalize()} counted as events. {no_events_text(trial, tte.code)}."
    return (f"{events_text(tte, trial).capitalize()} counted as events. {tte.label} at the horizon was {n['x_surv']}; "
            f"the difference was {n['x_diff']}. Log-rank test: {n['x_logrank']}. Hazard ratio: {n['x_hr']}, from "
            f"{n['x_events']}. {n['x_caution']}")


def summary_table(results: pd.DataFrame, paramcd: str, trial: Trial | None = None) -> pd.DataFrame:
    """Report table of one endpoint's rows of ``survival_results``: analysis, arm or comparison, estimate (95% CI), P;
    with ``trial``, one row saying so when the endpoint has no event."""
    d = results[results["PARAMCD"] == paramcd]
    if trial is not None and int(d.loc[d["ANALYSIS"] == survival.LOGRANK, "EVENTS"].sum()) == 0:
        return pd.DataFrame([{"Analysis": no_events_text(trial, paramcd), "Arm or comparison": "all arms",
                              "Estimate (95% CI)": "not estimable", "P value": "not estimable",
                              "Events / N": f"0 / {int(d.loc[d['ANALYSIS'] == survival.LOGRANK, 'N'].sum())}"}])
    name = "survival" if trial is None else km_name(trial, paramcd)
    rows = []
    for r in d.itertuples():
        what = r.ARM if not r.REFERENCE else f"{r.ARM} vs {r.REFERENCE}"
        if r.ANALYSIS.startswith(survival.KM_SURVIVAL):
            label = f"Kaplan-Meier {name} at the horizon, % (log-log CI)"
            est = estimate_text(r.ESTIMATE, r.LCL, r.UCL, scale=100, digits=1)
        elif r.ANALYSIS.startswith(survival.KM_DIFFERENCE):
            what = f"{r.ARM} minus {r.REFERENCE}"
            label = f"Difference in {name}, percentage points (Greenwood CI)"
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
                       paramcd: str | None = None) -> pd.DataFrame:
    """Status at the horizon by arm, n (%) of those randomized: event-free, event, unknown (``status_at_horizon``);
    'Alive' and 'Died' when death is the endpoint's only event."""
    paramcd = trial.lead_tte.code if paramcd is None else paramcd
    counts = survival.status_counts(adtte, adsl, trial, paramcd)
    names = {survival.EVENT_FREE: "Alive", survival.EVENT: "Died"} if event_noun(trial, paramcd) == "deaths" else {}
    return pd.DataFrame([{"Arm": header[arm.label],
                          **{names.get(r.STATUS, r.STATUS): n_pct(r.n, r.N)
                             for r in counts[counts["ARM"] == arm.label].itertuples()}} for arm in trial.arms])


def km_plot_table(km: pd.DataFrame) -> pd.DataFrame:
    """The numbers the Kaplan-Meier figure plots: per arm and event time, at risk, events, S(t) and its CI (%)."""
    d = km[(km["N_EVENT"] > 0) | (km["TIME"] == 0)]
    return pd.DataFrame({"Arm": d["ARM"], "Day": d["TIME"].astype(int), "At risk": d["N_RISK"],
                         "Events": d["N_EVENT"], "Survival (%)": (100 * d["SURV"]).round(1),
                         "95% CI (%)": [("" if np.isnan(lo) else f"{100 * lo:.1f} to {100 * hi:.1f}")
                                        for lo, hi in zip(d["LCL"], d["UCL"])]})


# ------------------------------------------------------------------ the chapter's tables

def show_event_counts(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> JournalTable:
    """events and censorings by arm (the lead time-to-event endpoint)."""
    header = arm_header(adsl, trial)
    tte = trial.lead_tte
    noun = event_noun(trial, tte.code)
    censors = "".join(f" {trial.event_label(c)}: censored at its date." for c in tte.censors)
    return journal_table(
        event_counts_table(survival.event_counts(adtte, trial, tte.code), header, noun.capitalize()),
        f"{noun.capitalize()} and censorings to day {trial.horizon_days} by arm ({tte.label.lower()})",
        f"tab-{LEAD}-events",
        notes="Alive at horizon: followed beyond the horizon without the event, censored at the horizon. "
              "Last known alive: follow-up ended earlier (study completed just before the horizon, withdrawal or loss "
              "to follow-up)." + censors)


def show_km_numbers(km: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> JournalTable:
    """the Kaplan-Meier estimates of the lead time-to-event endpoint the figure plots (rows of ``km``:
    ``survival.km_estimates``, as the ARD gives them back)."""
    header = arm_header(adsl, trial)
    tte = trial.lead_tte
    table = km_plot_table(survival.km_of(km, trial, tte.code))
    noun = event_noun(trial, tte.code)
    if noun != "deaths":
        table = table.rename(columns={"Survival (%)": "Event-free (%)"})
    return journal_table(
        table.assign(Arm=table["Arm"].map(header)),
        f"Kaplan-Meier estimates of {tte.label.lower()} at each {noun[:-1]} (the data of the figure above)",
        f"tab-km-{LEAD}", empty=no_events_text(trial, tte.code) + ".",
        notes="Day: days since randomization (day 1). 95% CI: pointwise, log(-log) transform of the Greenwood variance.")


def show_summary(results: pd.DataFrame, trial: Trial, paramcd: str | None = None) -> JournalTable:
    """one endpoint's estimates and tests (default: the lead time-to-event endpoint)."""
    paramcd = trial.lead_tte.code if paramcd is None else paramcd
    return journal_table(summary_table(results, paramcd, trial),
                         f"{trial.tte(paramcd).label}: estimates and tests at day {trial.horizon_days}",
                         f"tab-{reference_key(trial, paramcd)}-summary", notes=SUMMARY_NOTES)


def show_vital_status(adtte: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> JournalTable:
    """status at the horizon by arm, the data of Fisher's exact test."""
    censors = [trial.event_label(c).lower() for c in trial.lead_tte.censors]
    return journal_table(
        vital_status_table(adtte, adsl, trial, arm_header(adsl, trial)),
        f"{'Vital' if event_noun(trial, trial.lead_tte.code) == 'deaths' else 'Event'} status at day "
        f"{trial.horizon_days} by arm, n (%) (the data of Fisher's exact test)", "tab-vital-status",
        notes=f"Unknown: censored before the horizon without completing follow-up ({word_list(censors + ['withdrawal'], 'or')}); "
              "left out of the test.")


def show_other_endpoints(results: pd.DataFrame, km: pd.DataFrame, adtte: pd.DataFrame, adsl: pd.DataFrame,
                         trial: Trial, output_dir=None):
    """Each further time-to-event endpoint: a heading, its paragraph, its Kaplan-Meier figure and its table."""
    from IPython.display import Markdown, display

    from helpers.report import plots

    for tte in other_endpoints(trial):
        display(Markdown(f"## {tte.label}\n\n{other_endpoint_text(results, tte, trial)}"))
        key = reference_key(trial, tte.code)
        display(plots.save_figure(plots.km_figure(km, adtte, adsl, trial, tte.code), output_dir, f"km_{key}"))
        display(show_summary(results, trial, tte.code))


def show_intercurrent_events(adsl: pd.DataFrame, adlb: pd.DataFrame, trial: Trial) -> JournalTable:
    """intercurrent events before each visit and missed visits, by arm."""
    header = arm_header(adsl, trial)
    ice = survival.intercurrent_events(adsl, adlb, trial)
    return journal_table(
        ice.assign(Arm=ice["Arm"].map(header)).drop(columns="Randomized"),
        "Intercurrent events before each visit and missed visits, by arm (as randomized)", "tab-intercurrent",
        notes=f"{word_list(survival.causes(trial)).capitalize()}: follow-up ended for that reason before the visit's "
              "target day (cumulative). Expected: randomized minus those. Missed: expected but no laboratory record at "
              "the visit.")
