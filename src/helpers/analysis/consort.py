"""CONSORT participant flow (Schulz et al., BMJ 2010;340:c332, item 13 and figure 1) counted from the export.

The flow is a tidy table of boxes (``box``, ``parent``, ``partition``, ``arm``, ``label``, ``n``):
every box with children is split exactly by the children of each of its partitions (an arm's
allocation box is split once by treatment received, once by follow-up status and once by analysis),
which ``arithmetic_problems`` checks. The diagram is
drawn from that table only, so no number in it is typed.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from helpers.analysis import eligibility
from helpers.data.loading import Export
from helpers.trial import Trial

ENDS = ("DEATH", "TRANSPLANT", "WITHDRAWAL")  # priority when a participant has several, as ADSL DCSREAS
END_LABELS = {"DEATH": "Died", "TRANSPLANT": "Liver transplantation", "WITHDRAWAL": "Withdrew"}
WITHDRAWAL_REASONS = ("withdrew consent", "lost to follow-up", "physician decision")
_COLUMNS = ["box", "parent", "partition", "arm", "label", "n"]


def _row(box, parent, arm, label, n, partition: str = "") -> dict:
    return {"box": box, "parent": parent, "partition": partition, "arm": arm, "label": label, "n": int(n)}


def end_of_follow_up(events: pd.DataFrame) -> pd.DataFrame:
    """Per participant who stopped early: event_type (death before transplant before withdrawal) and term."""
    ev = events[events["event_type"].astype(str).isin(ENDS)].copy()
    ev["priority"] = ev["event_type"].astype(str).map({e: i for i, e in enumerate(ENDS)})
    ev = ev.sort_values(["subject_id", "priority", "start_date"]).drop_duplicates("subject_id")
    return ev.set_index("subject_id")[["event_type", "term", "start_date"]].astype({"event_type": str})


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
    rows.append(_row("excluded:other", "excluded", None, "Eligible, not randomized (other reasons)",
                     (excluded["status"] == "eligible").sum()))
    return rows


def _arm_rows(arm, rand: pd.DataFrame, first_arm: pd.Series, ends: pd.DataFrame, completed: set,
              analysed: set, last_visit: str, noun: str, assumed: bool, interim: bool) -> list[dict]:
    ids = pd.Index(rand.loc[rand["arm"].astype(str) == arm.code, "subject_id"])
    got = first_arm.reindex(ids)
    k = arm.code
    end = ends["event_type"].reindex(ids)
    term = ends["term"].reindex(ids).astype("string").str.lower()
    withdrew = end == "WITHDRAWAL"
    done = end.isna() & ids.isin(completed)
    stage = f"Completed {last_visit.lower()}"
    received = f"Started allocated {noun} at randomization" if assumed else f"Received allocated {noun}"
    ongoing = "In follow-up at the data cut-off" if interim else "Follow-up ongoing"
    rows = [_row(f"allocated:{k}", "randomized", k, f"Allocated to {arm.label.lower()}", len(ids)),
            _row(f"received:{k}", f"allocated:{k}", k, received, (got == k).sum(), "treatment"),
            _row(f"not_received:{k}", f"allocated:{k}", k, f"Did not receive allocated {noun}", (got != k).sum(),
                 "treatment"),
            _row(f"not_received:{k}:other", f"not_received:{k}", k, "Received the other route or regimen",
                 (got.notna() & (got != k)).sum()),
            _row(f"not_received:{k}:none", f"not_received:{k}", k, f"No {noun}", got.isna().sum()),
            _row(f"discontinued:{k}", f"allocated:{k}", k, f"Discontinued before {last_visit.lower()}",
                 end.notna().sum(), "follow-up"),
            _row(f"completed:{k}", f"allocated:{k}", k, stage, done.sum(), "follow-up"),
            _row(f"ongoing:{k}", f"allocated:{k}", k, ongoing, (end.isna() & ~done).sum(), "follow-up")]
    for e in ENDS:
        rows.append(_row(f"discontinued:{k}:{e.lower()}", f"discontinued:{k}", k, END_LABELS[e], (end == e).sum()))
    for r in WITHDRAWAL_REASONS:
        rows.append(_row(f"discontinued:{k}:withdrawal:{r}", f"discontinued:{k}:withdrawal", k, r.capitalize(),
                         (withdrew & (term == r)).sum()))
    rows.append(_row(f"discontinued:{k}:withdrawal:other", f"discontinued:{k}:withdrawal", k, "Other reason",
                     (withdrew & ~term.isin(WITHDRAWAL_REASONS).fillna(False)).sum()))
    rows += [_row(f"analysed:{k}", f"allocated:{k}", k, "Analysed (intention to treat)", ids.isin(analysed).sum(),
                  "analysis"),
             _row(f"not_analysed:{k}", f"allocated:{k}", k, "Excluded from analysis", (~ids.isin(analysed)).sum(),
                  "analysis")]
    return rows


def consort_flow(export: Export, trial: Trial, adsl: pd.DataFrame | None = None) -> pd.DataFrame:
    """The CONSORT boxes counted from screening, randomization, dosing and events (and ADSL's ITTFL).

    Excluded = screened but not randomized, split into not meeting criteria (by first failed
    criterion), declined to participate and eligible-not-randomized. Per arm as randomized:
    received the allocated treatment (the first dose record's ``arm_received``) or not; discontinued
    before the last visit by death, transplant or withdrawal (with the withdrawal reason),
    completed, or still in follow-up; analysed = ITT population (``ITTFL`` = Y, all randomized
    without ADSL).

    When study day 1 is the randomization date (``treatment.start: randomization``) and there are
    no dose records, everyone randomized is counted as having started the allocated treatment on
    the randomization day, and the box says so. At an interim look (a data cut-off in the trial
    file or ADSL's DCUTDT), those neither discontinued nor completed are "in follow-up at the data
    cut-off", not lost.
    """
    rand = export["randomization"]
    doses = export["infusion"]
    assumed = trial.treatment.start == "randomization" and doses.empty
    if assumed:
        first_arm = rand.set_index("subject_id")["arm"].astype(str)
    else:
        first = doses.sort_values(["subject_id", "infusion_no"]).drop_duplicates("subject_id")
        first_arm = first.set_index("subject_id")["arm_received"].astype(str)
    ev = export["events"]
    completed = set(ev.loc[ev["event_type"].astype(str) == "COMPLETED", "subject_id"])
    analysed = set(rand["subject_id"]) if adsl is None else set(adsl.loc[adsl["ITTFL"] == "Y", "SUBJID"])
    interim = trial.is_interim or (adsl is not None and "DCUTDT" in adsl and bool(adsl["DCUTDT"].notna().any()))
    last_visit = max(trial.visits, key=lambda v: v.week).label
    rows = _enrollment(export["screening"], set(rand["screening_id"]), trial)
    ends = end_of_follow_up(ev)
    for arm in trial.arms:
        rows += _arm_rows(arm, rand, first_arm, ends, completed, analysed, last_visit, trial.treatment.noun,
                          assumed, interim)
    return pd.DataFrame(rows, columns=_COLUMNS)


def arithmetic_problems(flow: pd.DataFrame) -> list[str]:
    """Boxes whose children do not add up to them (empty when the flow is consistent)."""
    n = flow.set_index("box")["n"]
    sums = flow.dropna(subset=["parent"]).groupby(["parent", "partition"], sort=False)["n"].sum()
    return [f"{p}: {n[p]} != {int(s)}, the sum of its children{f' by {part}' if part else ''}"
            for (p, part), s in sums.items() if n[p] != s]


def consort_table(flow: pd.DataFrame, trial: Trial) -> pd.DataFrame:
    """The flow as a readable table (the numbers the diagram draws): stage, box, then n overall or per arm."""
    shown = flow[(flow["n"] > 0) | ~flow["box"].str.contains(":criteria:|:withdrawal:|:other$|:none$|ongoing")]
    depth = shown["box"].str.count(":") - shown["arm"].notna().astype(int)
    label = ["\u2003" * max(int(d), 0) + lab for d, lab in zip(depth, shown["label"])]
    arm_label = shown["arm"].map(trial.arm_labels).fillna("All screened")
    return pd.DataFrame({"Group": arm_label.to_numpy(), "Box": label, "n": shown["n"].to_numpy()})


def _box_lines(flow: pd.DataFrame, box: str, indent: int = 0) -> list[str]:
    """The box's line, then its children's (sub-reasons with a zero count left out), indented."""
    rows = flow.set_index("box")
    lines = ["   " * indent + f"{rows.at[box, 'label']} (n={rows.at[box, 'n']})"]
    for child in flow.loc[(flow["parent"] == box) & (flow["partition"] == ""), "box"]:
        if indent >= 1 and rows.at[child, "n"] == 0:
            continue
        lines += _box_lines(flow, child, indent + 1)
    return lines


def box_texts(flow: pd.DataFrame, trial: Trial) -> dict[str, str]:
    """Text of each diagram box (enrollment boxes, then allocation, follow-up and analysis per arm)."""
    n = flow.set_index("box")["n"]
    texts = {"assessed": _box_lines(flow, "assessed")[0], "randomized": _box_lines(flow, "randomized")[0],
             "excluded": "\n".join(_box_lines(flow, "excluded"))}
    for arm in trial.arms:
        k = arm.code
        texts[f"allocation:{k}"] = "\n".join(_box_lines(flow, f"allocated:{k}")[:1] + _box_lines(flow, f"received:{k}", 1)
                                             + _box_lines(flow, f"not_received:{k}", 1))
        fu = _box_lines(flow, f"discontinued:{k}") + _box_lines(flow, f"completed:{k}")
        texts[f"follow-up:{k}"] = "\n".join(fu + (_box_lines(flow, f"ongoing:{k}") if n[f"ongoing:{k}"] else []))
        texts[f"analysis:{k}"] = "\n".join(_box_lines(flow, f"analysed:{k}") + _box_lines(flow, f"not_analysed:{k}"))
    return texts


def _place(ax, renderer, x: float, top: float, text: str, ha: str = "center") -> tuple[float, float, float, float]:
    """Draw a boxed text with the box's top edge at ``top``; return the box's (left, right, bottom, top) in data units."""
    size = 8.5
    pad = 0.5 * size * ax.figure.dpi / 72
    t = ax.text(x, top, text, ha=ha, va="top", multialignment="left", fontsize=size, linespacing=1.35,
                bbox=dict(boxstyle="square,pad=0.5", facecolor="white", edgecolor="#222", linewidth=1))
    to_data = ax.transData.inverted()
    pad_y = to_data.transform((0, pad))[1] - to_data.transform((0, 0))[1]
    t.set_y(top - pad_y)
    ext = t.get_window_extent(renderer).expanded(1, 1)
    (x0, y0), (x1, y1) = to_data.transform([(ext.x0 - pad, ext.y0 - pad), (ext.x1 + pad, ext.y1 + pad)])
    return x0, x1, y0, y1


def _arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color="#222", linewidth=1, shrinkA=0, shrinkB=0))


def plot_consort(flow: pd.DataFrame, trial: Trial):
    """The CONSORT flow diagram drawn from ``consort_flow``: enrollment, allocation, follow-up and analysis.

    Boxes are stacked top-down from their measured sizes, so any number of reasons fits; the axes
    are hidden, so the book's tight bounding box crops the unused margin.
    """
    texts = box_texts(flow, trial)
    k = len(trial.arms)
    n_lines = sum(t.count("\n") + 1 for key, t in texts.items() if ":" not in key) + sum(
        max(texts[f"{stage}:{a.code}"].count("\n") + 1 for a in trial.arms) for stage in ("allocation", "follow-up", "analysis"))
    fig, ax = plt.subplots(figsize=(max(11.0, 5.0 * k), 1.0 + 0.19 * n_lines + 0.4 * 6))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axis("off")
    renderer = fig.canvas.get_renderer()
    gap = 100 * 0.3 / fig.get_figheight()
    xs = [14 + 86 * (i + 0.5) / k for i in range(k)]
    trunk = sum(xs) / k
    stages = {}
    _, _, bottom, top = _place(ax, renderer, trunk, 99, texts["assessed"])
    stages["Enrollment"] = top
    left, _, ex_bottom, ex_top = _place(ax, renderer, trunk + 4, bottom - gap, texts["excluded"], ha="left")
    _arrow(ax, (trunk, (ex_top + ex_bottom) / 2), (left, (ex_top + ex_bottom) / 2))
    _, _, r_bottom, r_top = _place(ax, renderer, trunk, ex_bottom - gap, texts["randomized"])
    _arrow(ax, (trunk, bottom), (trunk, r_top))
    branch = r_bottom - gap
    ax.plot([trunk, trunk], [r_bottom, branch], color="#222", linewidth=1)
    ax.plot([min(xs + [trunk]), max(xs + [trunk])], [branch, branch], color="#222", linewidth=1)
    ends = {x: branch for x in xs}
    for stage in ("allocation", "follow-up", "analysis"):
        top = min(ends.values()) - 1.5 * gap
        stages[stage.capitalize()] = top
        for x, arm in zip(xs, trial.arms):
            _, _, b, t = _place(ax, renderer, x, top, texts[f"{stage}:{arm.code}"])
            _arrow(ax, (x, ends[x]), (x, t))
            ends[x] = b
    for name, y in stages.items():
        ax.text(0, y, name, ha="left", va="top", fontsize=9, fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.35", facecolor="#d9e6f2", edgecolor="#1b6ca8", linewidth=0.8))
    plt.close(fig)
    return fig
