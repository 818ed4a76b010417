"""The CONSORT flow for display: the table of the diagram's numbers and the text of each diagram box,
both read from ``helpers.analysis.consort.consort_flow``."""
from __future__ import annotations

import pandas as pd

from helpers.trial import Trial


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
