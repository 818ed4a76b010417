"""Adverse events by arm in the safety population (SAFFL = Y, by arm actually received, TRT01A).

An ADAE-style dataset is derived from the events file (event_type AE); deaths come from its DEATH
rows. Tables count participants with at least one event (n, % of the arm's safety population)
and events. Terms are reported verbatim (the export carries no MedDRA coding). The display tables,
listing and prose are in ``helpers.report.safety``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.data.adam import study_day, usubjid
from helpers.data.loading import Export
from helpers.trial import Trial

RELATED = ("possible", "probable", "definite")
# Summary categories, in the order of the summary table: any, serious, related, leading to withdrawal, death.
CATEGORIES = ("ANY", "SERIOUS", "RELATED", "WITHDRAWAL", "DEATH")


def safety_population(adsl: pd.DataFrame) -> pd.DataFrame:
    """Participants who received any dose of study treatment (SAFFL = Y)."""
    return adsl[adsl["SAFFL"] == "Y"]


def safety_n(adsl: pd.DataFrame, trial: Trial) -> dict[str, int]:
    """Safety population per arm as treated (TRT01A label), in the trial file's order."""
    treated = safety_population(adsl)["TRT01A"].value_counts()
    return {a.label: int(treated.get(a.label, 0)) for a in trial.arms}


def build_adae(export: Export, adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """ADAE-style records: AEs of the safety population with arm as treated, study days from first
    dose (ASTDY), treatment-emergent flag (onset on or after the first dose), and flags
    AESER, AERELFL (possible/probable/definite), AEWDFL (led to withdrawal)."""
    sl = safety_population(adsl).set_index("SUBJID")
    ev = export["events"]
    ae = ev[(ev["event_type"] == "AE") & ev["subject_id"].isin(sl.index)]
    trtsdt = ae["subject_id"].map(sl["TRTSDT"])
    out = pd.DataFrame({
        "USUBJID": usubjid(trial, ae["subject_id"]).to_numpy(),
        "TRT01A": ae["subject_id"].map(sl["TRT01A"]).to_numpy(),
        "AESEQ": ae["event_id"].to_numpy(),
        "AETERM": ae["term"].to_numpy(),
        "ASTDT": ae["start_date"].to_numpy(),
        "AENDT": ae["end_date"].to_numpy(),
        "ASTDY": study_day(ae["start_date"], trtsdt).array,
        "AENDY": study_day(ae["end_date"], trtsdt).array,
        "AESER": ae["serious"].to_numpy(),
        "AESEV": ae["severity"].to_numpy(),
        "AEREL": ae["relatedness"].to_numpy(),
        "AERELFL": np.where(ae["relatedness"].isin(RELATED), "Y", "N"),
        "AEWDFL": ae["led_to_withdrawal"].to_numpy(),
        "TRTEMFL": np.where(ae["start_date"] >= trtsdt, "Y", "N"),
    })
    return out.sort_values(["USUBJID", "ASTDT", "AESEQ"]).reset_index(drop=True)


def deaths(export: Export, adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """DEATH rows of the events file for the safety population: USUBJID, arm as treated, cause, study day."""
    sl = safety_population(adsl).set_index("SUBJID")
    ev = export["events"]
    d = ev[(ev["event_type"] == "DEATH") & ev["subject_id"].isin(sl.index)]
    return pd.DataFrame({"USUBJID": usubjid(trial, d["subject_id"]).to_numpy(),
                         "TRT01A": d["subject_id"].map(sl["TRT01A"]).to_numpy(),
                         "DTHCAUS": d["term"].to_numpy(),
                         "DTHDY": study_day(d["start_date"], d["subject_id"].map(sl["TRTSDT"])).array})


def _category_records(adae: pd.DataFrame, dth: pd.DataFrame) -> dict[str, pd.DataFrame]:
    teae = adae[adae["TRTEMFL"] == "Y"]
    return {"ANY": teae, "SERIOUS": teae[teae["AESER"] == "Y"], "RELATED": teae[teae["AERELFL"] == "Y"],
            "WITHDRAWAL": teae[teae["AEWDFL"] == "Y"], "DEATH": dth}


def _count(records: pd.DataFrame, arm_n: dict[str, int]) -> list[dict]:
    return [{"ARM": arm, "N": n, "N_PARTICIPANTS": int(records.loc[records["TRT01A"] == arm, "USUBJID"].nunique()),
             "N_EVENTS": int((records["TRT01A"] == arm).sum())} for arm, n in arm_n.items()]


def ae_summary(adae: pd.DataFrame, dth: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """Tidy: per category (any, serious, related, leading to withdrawal, death) and arm, participants with
    at least one event, % of the arm's safety population, and events. AEs are treatment-emergent."""
    arm_n = safety_n(adsl, trial)
    rows = [{"CATEGORY": code, "TERM": "", **r}
            for code, rec in _category_records(adae, dth).items() for r in _count(rec, arm_n)]
    return _with_pct(pd.DataFrame(rows))


def _with_pct(df: pd.DataFrame) -> pd.DataFrame:
    df["PCT"] = np.where(df["N"] > 0, 100 * df["N_PARTICIPANTS"] / df["N"].where(df["N"] > 0, 1), np.nan)
    return df[["CATEGORY", "TERM", "ARM", "N", "N_PARTICIPANTS", "PCT", "N_EVENTS"]]


def ae_by_term(adae: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, category: str = "TERM") -> pd.DataFrame:
    """Tidy: per verbatim term and arm, participants and events (treatment-emergent), terms sorted by
    participants over all arms, then events, then name."""
    arm_n = safety_n(adsl, trial)
    teae = adae[adae["TRTEMFL"] == "Y"]
    order = (teae.groupby("AETERM").agg(p=("USUBJID", "nunique"), e=("USUBJID", "size")).reset_index()
             .sort_values(["p", "e", "AETERM"], ascending=[False, False, True])["AETERM"])
    rows = [{"CATEGORY": category, "TERM": term, **r} for term in order
            for r in _count(teae[teae["AETERM"] == term], arm_n)]
    cols = ["CATEGORY", "TERM", "ARM", "N", "N_PARTICIPANTS", "N_EVENTS"]
    return _with_pct(pd.DataFrame(rows, columns=cols))


def is_procedure_term(term: pd.Series, keywords: tuple[str, ...]) -> pd.Series:
    """True for verbatim terms holding one of ``keywords`` (the trial file's ``safety: procedure_terms``), any case."""
    low = term.str.lower()
    if not len(term) or not keywords:
        return pd.Series(False, index=term.index, dtype=bool)
    return pd.Series(np.logical_or.reduce([low.str.contains(k, regex=False) for k in keywords]), index=term.index)


def procedure_events(adae: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """``ae_by_term`` restricted to the trial file's procedure-related terms, CATEGORY PROCEDURE; none when the
    trial file lists no such terms."""
    return ae_by_term(adae[is_procedure_term(adae["AETERM"], trial.procedure_terms)], adsl, trial, category="PROCEDURE")


NOT_COLLECTED = "not collected"
AE_CATEGORIES = CATEGORIES[:-1]


def adverse_event_results(adae: pd.DataFrame, dth: pd.DataFrame, adsl: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """The chapter's tidy export: the summary categories, then every term, then procedure terms. When the trial
    file says adverse events were not collected, only deaths are counted (the AE categories are absent, not 0)."""
    if not trial.adverse_events_collected:
        summary = ae_summary(adae.iloc[0:0], dth, adsl, trial)
        return summary[summary["CATEGORY"] == "DEATH"].reset_index(drop=True).astype(
            {"N": int, "N_PARTICIPANTS": int, "PCT": float, "N_EVENTS": int})
    parts = [ae_summary(adae, dth, adsl, trial), ae_by_term(adae, adsl, trial), procedure_events(adae, adsl, trial)]
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    return out.astype({"N": int, "N_PARTICIPANTS": int, "PCT": float, "N_EVENTS": int})


def rows_of(results: pd.DataFrame, *categories: str) -> pd.DataFrame:
    """The rows of ``adverse_event_results`` in the given categories (every summary category when none is given)."""
    return results[results["CATEGORY"].isin(categories or CATEGORIES)]


def counts(results: pd.DataFrame, adsl: pd.DataFrame) -> dict[str, int]:
    """The chapter's counts: safety population, participants treated in another arm than allocated,
    treatment-emergent adverse events, and procedure-related events (the trial file's safety.procedure_terms)."""
    saf = safety_population(adsl)
    return {"n_safety": len(saf), "n_switched": int((saf["TRT01A"] != saf["TRT01P"]).sum()),
            "n_ae": int(rows_of(results, "ANY")["N_EVENTS"].sum()),
            "n_proc": int(rows_of(results, "PROCEDURE")["N_EVENTS"].sum())}


def procedure_terms(results: pd.DataFrame) -> list[str]:
    """The procedure-related terms reported, in the order of the results (most frequent first)."""
    return list(dict.fromkeys(rows_of(results, "PROCEDURE")["TERM"]))
