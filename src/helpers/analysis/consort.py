"""CONSORT participant flow (Schulz et al., BMJ 2010;340:c332, item 13 and figure 1) counted from the
export (enrollment, allocation, treatment received) and ADSL (end of study, analysis population).

The flow is a tidy table of boxes (``box``, ``parent``, ``partition``, ``arm``, ``label``, ``n``):
every box with children is split exactly by the children of each of its partitions (an arm's
allocation box is split once by treatment received, once by follow-up status and once by analysis),
which ``arithmetic_problems`` checks. The table and diagram (``helpers.report.consort``,
``helpers.report.plots.consort``) are drawn from it only, so no number in them is typed.
"""
from __future__ import annotations

import pandas as pd

from helpers.analysis import eligibility
from helpers.data.adam import intercurrent_columns
from helpers.data.loading import Export, first_doses
from helpers.trial import Trial

WITHDRAWAL_REASONS = ("withdrew consent", "lost to follow-up", "physician decision")
_COLUMNS = ["box", "parent", "partition", "arm", "label", "n"]


def _row(box, parent, arm, label, n, partition: str = "") -> dict:
    return {"box": box, "parent": parent, "partition": partition, "arm": arm, "label": label, "n": int(n)}


def _enrollment(screening: pd.DataFrame, randomized: set, trial: Trial) -> list[dict]:
    elig = eligibility.evaluate(screening, trial)
    excluded = elig[~elig["screening_id"].isin(randomized)]
    rows = [_row("assessed", None, None, "Assessed for eligibility", len(screening)),
            _row("excluded", "assessed", None, "Excluded", len(excluded)),
            _row("randomized", "assessed", None, "Randomized", len(screening) - len(excluded))]
    criteria = excluded[excluded["status"] == "not meeting criteria"]
    rows.append(_row("excluded:criteria", "excluded", None, "Not meeting eligibility criteria", len(criteria)))
    for c in eligibility.criteria(trial):
        if not c.consent:
            rows.append(_row(f"excluded:criteria:{c.name}", "excluded:criteria", None, c.short_title,
                             (criteria["primary_reason"] == c.title).sum()))
    rows.append(_row("excluded:declined", "excluded", None, "Declined to participate",
                     (excluded["status"] == "declined to participate").sum()))
    unrecorded = (excluded["status"] == eligibility.CONSENT_NOT_RECORDED).sum()
    if unrecorded:
        rows.append(_row("excluded:consent_not_recorded", "excluded", None, "Consent not recorded", unrecorded))
    rows.append(_row("excluded:other", "excluded", None, "Eligible, not randomized (other reasons)",
                     (excluded["status"] == "eligible").sum()))
    return rows


def _ends(adsl: pd.DataFrame, ids: pd.Index, trial: Trial) -> dict[str, pd.Series]:
    """Per participant of ``ids``, ADSL's end of study: discontinued by death, by each intercurrent event of the trial
    file (keyed by its code in lower case) or by withdrawal (with the reason, lower case), completed, ongoing
    (``derive_disposition`` ranks the ends)."""
    sl = adsl.set_index("SUBJID").reindex(ids)
    discontinued = sl["EOSSTT"].eq("DISCONTINUED").to_numpy(dtype=bool)
    ended = sl["DTHFL"].eq("Y").to_numpy(dtype=bool) & discontinued
    out = {"discontinued": discontinued, "death": ended}
    for code, (_, flag) in intercurrent_columns(trial).items():
        out[code.lower()] = sl[flag].eq("Y").to_numpy(dtype=bool) & discontinued & ~ended
        ended = ended | out[code.lower()]
    return out | {"withdrawal": discontinued & ~ended,
                  "reason": sl["DCSREAS"].astype("string").str.lower().to_numpy(),
                  "completed": sl["EOSSTT"].eq("COMPLETED").to_numpy(dtype=bool)}


def _arm_rows(arm, rand: pd.DataFrame, first_arm: pd.Series, adsl: pd.DataFrame, analysed: set, trial: Trial,
              assumed: bool, interim: bool) -> list[dict]:
    last_visit, noun = trial.last_visit.label, trial.treatment.noun
    ids = pd.Index(rand.loc[rand["arm"].astype(str) == arm.code, "subject_id"])
    got = first_arm.reindex(ids)
    k = arm.code
    end = _ends(adsl, ids, trial)
    withdrew, reason = end["withdrawal"], pd.Series(end["reason"], dtype="string")
    stage = f"Completed {last_visit.lower()}"
    received = f"Started allocated {noun} at randomization" if assumed else f"Received allocated {noun}"
    ongoing = "In follow-up at the data cut-off" if interim else "Follow-up ongoing"
    rows = [_row(f"allocated:{k}", "randomized", k, f"Allocated to {arm.label}", len(ids)),
            _row(f"received:{k}", f"allocated:{k}", k, received, (got == k).sum(), "treatment"),
            _row(f"not_received:{k}", f"allocated:{k}", k, f"Did not receive allocated {noun}", (got != k).sum(),
                 "treatment"),
            _row(f"not_received:{k}:other", f"not_received:{k}", k, "Received the other route or regimen",
                 (got.notna() & (got != k)).sum()),
            _row(f"not_received:{k}:none", f"not_received:{k}", k, f"No {noun}", got.isna().sum()),
            _row(f"discontinued:{k}", f"allocated:{k}", k, f"Discontinued before {last_visit.lower()}",
                 end["discontinued"].sum(), "follow-up"),
            _row(f"completed:{k}", f"allocated:{k}", k, stage, end["completed"].sum(), "follow-up"),
            _row(f"ongoing:{k}", f"allocated:{k}", k, ongoing, (~end["discontinued"] & ~end["completed"]).sum(),
                 "follow-up")]
    ends = [("death", "Died")] + [(e.code.lower(), e.label) for e in trial.intercurrent_events] + \
        [("withdrawal", "Withdrew")]
    for e, label in ends:
        rows.append(_row(f"discontinued:{k}:{e}", f"discontinued:{k}", k, label, end[e].sum()))
    known = reason.isin(WITHDRAWAL_REASONS).fillna(False).to_numpy(dtype=bool)
    for r in WITHDRAWAL_REASONS:
        rows.append(_row(f"discontinued:{k}:withdrawal:{r}", f"discontinued:{k}:withdrawal", k, r.capitalize(),
                         (withdrew & reason.eq(r).fillna(False).to_numpy(dtype=bool)).sum()))
    rows.append(_row(f"discontinued:{k}:withdrawal:other", f"discontinued:{k}:withdrawal", k, "Other reason",
                     (withdrew & ~known).sum()))
    rows += [_row(f"analysed:{k}", f"allocated:{k}", k, "Analysed (intention to treat)", ids.isin(analysed).sum(),
                  "analysis"),
             _row(f"not_analysed:{k}", f"allocated:{k}", k, "Excluded from analysis", (~ids.isin(analysed)).sum(),
                  "analysis")]
    return rows


def consort_flow(export: Export, trial: Trial, adsl: pd.DataFrame) -> pd.DataFrame:
    """The CONSORT boxes counted from screening, randomization and dosing, and ADSL's end of study and ITTFL.

    Excluded = screened but not randomized, split into not meeting criteria (by first failed
    criterion), declined to participate and eligible-not-randomized. Per arm as randomized:
    received the allocated treatment (the first dose record's ``arm_received``) or not; discontinued
    before the last visit by death, an intercurrent event or withdrawal (with the withdrawal reason), completed,
    or still in follow-up, as ADSL's EOSSTT, DCSREAS, DTHFL and ICEnFL say (one priority of ends,
    ``derive_disposition``); analysed = ITT population (``ITTFL`` = Y).

    When the trial needs no dosing file and there are no dose records (``Trial.doses_recorded``),
    everyone randomized is counted as having started the allocated treatment on
    the randomization day, and the box says so. At an interim look (a data cut-off in the trial
    file or ADSL's DCUTDT), those neither discontinued nor completed are "in follow-up at the data
    cut-off", not lost.
    """
    rand = export["randomization"]
    doses = export["dosing"]
    assumed = not trial.doses_recorded(len(doses))
    if assumed:
        first_arm = rand.set_index("subject_id")["arm"].astype(str)
    else:
        first_arm = first_doses(doses)["arm_received"].astype(str)
    analysed = set(adsl.loc[adsl["ITTFL"] == "Y", "SUBJID"])
    interim = trial.is_interim or ("DCUTDT" in adsl and bool(adsl["DCUTDT"].notna().any()))
    rows = _enrollment(export["screening"], set(rand["screening_id"]), trial)
    for arm in trial.arms:
        rows += _arm_rows(arm, rand, first_arm, adsl, analysed, trial, assumed, interim)
    return pd.DataFrame(rows, columns=_COLUMNS)


def arithmetic_problems(flow: pd.DataFrame) -> list[str]:
    """Boxes whose children do not add up to them (empty when the flow is consistent)."""
    n = flow.set_index("box")["n"]
    sums = flow.dropna(subset=["parent"]).groupby(["parent", "partition"], sort=False)["n"].sum()
    return [f"{p}: {n[p]} != {int(s)}, the sum of its children{f' by {part}' if part else ''}"
            for (p, part), s in sums.items() if n[p] != s]
