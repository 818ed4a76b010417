"""The safety chapter as the reader sees it: adverse-event tables by arm as treated, the listing of deaths
and serious events, and the numbers and phrases its prose glues (from ``helpers.analysis.safety``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis.safety import (
    AE_CATEGORIES,
    CATEGORIES,
    NOT_COLLECTED,
    counts,
    procedure_terms,
    rows_of,
    safety_n,
)
from helpers.report.tables import fixed, n_pct
from helpers.trial import Trial

NOT_COLLECTED_SENTENCE = ("Adverse events were not collected in this trial (trial file: "
                          "safety.adverse_events_collected is false).")
CATEGORY_LABELS = {
    "ANY": "Any adverse event",
    "SERIOUS": "Serious adverse event",
    "RELATED": "Related to study treatment (possible, probable or definite)",
    "WITHDRAWAL": "Leading to withdrawal",
    "DEATH": "Death",
}


def safety_header(adsl: pd.DataFrame, trial: Trial) -> dict[str, str]:
    """Arm label -> 'Label (N=n)' with n the safety population as treated."""
    return {label: f"{label} (N={n})" for label, n in safety_n(adsl, trial).items()}


def display_table(tidy: pd.DataFrame, header: dict[str, str], first: str = "Adverse event") -> pd.DataFrame:
    """Wide report table: one row per category or term; per arm 'n (%)' participants and events."""
    key = tidy["TERM"].where(tidy["TERM"] != "", tidy["CATEGORY"].map(CATEGORY_LABELS))
    rows = list(dict.fromkeys(key))
    out = pd.DataFrame({first: rows})
    for arm, label in header.items():
        d = tidy[tidy["ARM"] == arm].assign(_k=key).set_index("_k").reindex(rows)
        out[f"{label}: participants, n (%)"] = [n_pct(int(p), int(n)) for p, n in zip(d["N_PARTICIPANTS"], d["N"])]
        out[f"{label}: events"] = d["N_EVENTS"].astype(int).to_numpy()
    return out


def summary_table(results: pd.DataFrame, header: dict[str, str], trial: Trial | None = None) -> pd.DataFrame:
    """``display_table`` of the summary categories (any, serious, related, withdrawal, death); "not collected" in
    every cell of the adverse-event categories when the trial file says they were not collected."""
    table = display_table(rows_of(results), header, first="Participants with at least one")
    if trial is None or trial.adverse_events_collected:
        return table
    missing = pd.DataFrame([{c: NOT_COLLECTED for c in table.columns} | {table.columns[0]: CATEGORY_LABELS[code]}
                            for code in AE_CATEGORIES])
    return pd.concat([missing, table], ignore_index=True)


def empty_text(trial: Trial, otherwise: str) -> str:
    """What an empty adverse-event table means: none reported (``otherwise``), or not collected."""
    return otherwise if trial.adverse_events_collected else NOT_COLLECTED_SENTENCE


def term_table(results: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """``display_table`` of every verbatim term, most frequent first."""
    return display_table(rows_of(results, "TERM"), header)


def procedure_table(results: pd.DataFrame, header: dict[str, str]) -> pd.DataFrame:
    """``display_table`` of the procedure-related terms."""
    return display_table(rows_of(results, "PROCEDURE"), header)


def serious_listing(adae: pd.DataFrame, dth: pd.DataFrame) -> pd.DataFrame:
    """Listing of deaths and serious AEs by participant (USUBJID only), ordered by participant and study day.

    A serious AE ending on the day of death is shown as fatal."""
    sae = adae[adae["AESER"] == "Y"]
    fatal = sae["USUBJID"].map(dth.set_index("USUBJID")["DTHDY"]).eq(sae["AENDY"]).fillna(False).to_numpy(bool)
    outcome = np.select([fatal, sae["AENDT"].isna().to_numpy()], ["Fatal", "Ongoing at end of follow-up"],
                        ("Resolved day " + sae["AENDY"].astype("string").fillna("")).to_numpy(str))
    rows = pd.DataFrame({"Participant": sae["USUBJID"], "Arm (as treated)": sae["TRT01A"], "Record": "Serious AE",
                         "Term": sae["AETERM"], "Onset (study day)": sae["ASTDY"].astype("Int64"),
                         "Severity": sae["AESEV"], "Relatedness": sae["AEREL"], "Outcome": outcome,
                         "Led to withdrawal": sae["AEWDFL"].map({"Y": "Yes", "N": "No"})})
    dead = pd.DataFrame({"Participant": dth["USUBJID"], "Arm (as treated)": dth["TRT01A"], "Record": "Death",
                         "Term": dth["DTHCAUS"], "Onset (study day)": dth["DTHDY"].astype("Int64"),
                         "Severity": "", "Relatedness": "", "Outcome": "", "Led to withdrawal": ""})
    out = pd.concat([rows, dead], ignore_index=True)
    out["_r"] = (out["Record"] == "Death").astype(int)
    return out.sort_values(["Participant", "Onset (study day)", "_r", "Term"]).drop(columns="_r").reset_index(drop=True)


def summary_text(results: pd.DataFrame, category: str) -> str:
    """One summary category in words, per arm: 'peripheral vein 6 of 16 (37.5%), 6 event(s)', for the text."""
    d = results[results["CATEGORY"] == category]
    return "; ".join(f"{a} {p} of {n} ({fixed(pct, 1)}%), {e} event(s)" for a, n, p, pct, e in
                     zip(d["ARM"], d["N"], d["N_PARTICIPANTS"], d["PCT"], d["N_EVENTS"]))


def procedure_matched(trial: Trial) -> str:
    """Which verbatim terms count as procedure-related: the trial file's ``safety: procedure_terms``, or that it
    lists none."""
    if not trial.procedure_terms:
        return "the trial file lists no procedure-related terms (safety: procedure_terms), so none is matched"
    return "terms holding " + ", ".join(trial.procedure_terms) + ", as the trial file lists them"


def procedure_notes(trial: Trial) -> tuple[str | None, str]:
    """The procedure table's note and the text it shows when it has no rows."""
    if not trial.procedure_terms:
        return None, "Not applicable: the trial file lists no procedure-related terms."
    return "Terms matched: " + ", ".join(trial.procedure_terms) + ".", "No procedure-related events were reported."


def chapter_numbers(results: pd.DataFrame, adsl: pd.DataFrame, trial: Trial, source: str) -> dict[str, str | int]:
    """Every number and phrase the safety chapter's prose glues, from ``safety.adverse_event_results``."""
    n = counts(results, adsl)
    collected = trial.adverse_events_collected
    proc = f"{', '.join(procedure_terms(results)) or 'none'}, {n['n_proc']} event(s) in all"
    return {
        "source": source,
        "n_safety": n["n_safety"],
        "n_safety_arm": ", ".join(f"{k} {label}" for label, k in safety_n(adsl, trial).items()),
        "n_switched": n["n_switched"],
        "n_ae": n["n_ae"] if collected else NOT_COLLECTED,
        **{f"ae_{code.lower()}": summary_text(results, code) if collected or code == "DEATH" else NOT_COLLECTED
           for code in CATEGORIES},
        "proc_terms": ", ".join(procedure_terms(results)) or "none",
        "proc_matched": procedure_matched(trial),
        "n_proc": n["n_proc"],
        "ae_text": (f"Of {n['n_ae']} adverse events in all" if collected else
                    "As adverse events were not collected in this trial (trial file: "
                    "safety.adverse_events_collected is false)"),
        "proc_text": proc if collected else NOT_COLLECTED_SENTENCE[:-1],
    }
