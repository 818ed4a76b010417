"""The column-wise validation and derivation rules give what the row-by-row code they replaced gave: the old code
is kept here as the reference, and both run on random tables built to reach every branch (participants with one,
two and many values, ties in time, other scripts' digits, repeated texts)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from helpers.data import adam, loading
from helpers.data.privacy import Identifiers, identifiers_in_text
from helpers.data.reading import Problem


def _key_form_by_row(values: pd.Series) -> pd.Series:
    folded = values.astype("string").str.strip().str.casefold()
    return folded.str.replace(r"\d+", lambda m: str(int(m.group())), regex=True)


def test_key_form_is_the_row_by_row_rule():
    rng = np.random.default_rng(0)
    alphabet = list("0123456789-. aBx") + ["\u0663", "\uff11", "\u00c9"]
    texts = ["".join(rng.choice(alphabet, rng.integers(0, 9))) for _ in range(3000)]
    values = pd.Series(texts + [None, np.nan, " 01-005 ", "1-5"], index=np.arange(3004) * 3 + 7, name="key")
    for v in (values, values.astype("string"), values.iloc[:0], pd.Series([1, 1.0, "S01", True])):
        pd.testing.assert_series_equal(loading.key_form(v), _key_form_by_row(v), check_exact=True)


def _neighbours_by_row(dates: pd.Series, position: int) -> list[int]:
    n = len(dates)
    if 0 < position < n - 1:
        before, after = dates.iloc[position] - dates.iloc[position - 1], dates.iloc[position + 1] - dates.iloc[position]
        return [position - 1, position + 1] if before <= after else [position + 1, position - 1]
    return [i for i in ((1, 2) if position == 0 else (n - 2, n - 3)) if 0 <= i < n and i != position]


def _unit_mixups_by_row(tables, names, trial):
    labs = tables["labs"]
    fname = names.get("labs", "labs.csv")
    errors, warnings = [], []
    tolerance = np.log(loading.UNIT_MIXUP_TOLERANCE)
    for test in trial.lab_panel:
        other_units = {u: f for u, f in test.units if f != 1}
        if not other_units or test.column not in labs:
            continue
        measured = labs[test.column + loading.CENS].isna() if test.column + loading.CENS in labs else True
        data = labs.loc[measured, ["subject_id", "lab_date", test.column]].dropna()
        lo, hi = test.impossible
        possible = (data[test.column].astype(float) >= (-np.inf if lo is None else lo)) & \
                   (data[test.column].astype(float) <= (np.inf if hi is None else hi))
        data = data[(data[test.column].astype(float) > 0) & possible].sort_values(["subject_id", "lab_date"], kind="stable")
        for sid, g in data.groupby("subject_id", sort=False):
            values = g[test.column].astype(float)
            if len(values) < 2:
                continue
            for pos, (i, v) in enumerate(values.items()):
                near = values.iloc[_neighbours_by_row(g["lab_date"], pos)]
                for unit, factor in other_units.items():
                    fits = np.abs(np.log(v * factor / near.to_numpy())) < tolerance
                    if not fits[0]:
                        continue
                    sure = len(near) == 2 and fits.all()
                    message = (f"{v:g} is about 1/{factor:g} of {sid}'s values measured "
                               f"{'just before and after it' if sure else 'nearest in time'} "
                               f"({', '.join(f'{x:g}' for x in near)} {test.unit}): reported in {unit}? "
                               f"x {factor:g} = {v * factor:.4g} {test.unit}")
                    (errors if sure else warnings).append(
                        Problem(fname, i + 2, test.column, "unit_mixup" if sure else "unit_mixup_possible", message))
    return errors, warnings


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unit_mixups_are_the_row_by_row_rule(trial, seed):
    rng = np.random.default_rng(seed)
    tests = [t for t in trial.lab_panel if any(f != 1 for _, f in t.units)]
    assert tests
    sizes = rng.choice([1, 2, 3, 4, 7], 150)
    subjects = np.repeat([f"01-{k:03d}" for k in range(len(sizes))], sizes)
    days = rng.choice([0, 7, 14, 21, 28, 35, 42, 56, 84], len(subjects))  # repeated days: ties and equal gaps
    labs = pd.DataFrame({"subject_id": subjects,
                         "lab_date": pd.Timestamp("2025-01-01") + pd.to_timedelta(days, unit="D")})
    labs = labs.sample(frac=1, random_state=seed).reset_index(drop=True)
    for t in tests:
        factor = next(f for _, f in t.units if f != 1)
        lo, hi = t.expected or (1.0, 100.0)
        value = np.exp(rng.uniform(np.log(max(lo, 1e-3)), np.log(hi), len(labs)))
        value = np.where(rng.random(len(labs)) < 0.2, value / factor, value)  # reported in the other unit
        value = np.where(rng.random(len(labs)) < 0.05, np.nan, value)
        labs[t.column] = pd.array(np.round(value, 3), dtype="Float64")
        labs[t.column + loading.CENS] = np.where(rng.random(len(labs)) < 0.05, "<", None)
    names = {"labs": "labs.csv"}
    new = loading._unit_mixups({"labs": labs}, names, trial)
    old = _unit_mixups_by_row({"labs": labs}, names, trial)
    assert old[0] and old[1], "the random table reaches both rules"
    assert new == old


def test_free_text_finds_the_dates_the_substring_search_found():
    values = Identifiers(names={}, numbers={}, dates={"1955-06-02": "screening.birth_date",
                                                      "1977-05-01": "screening.birth_date",
                                                      "0999-01-01": "screening.birth_date", "999-1-1": "odd.date"})
    texts = ["born 1955-06-02", "x11955-06-021x", "1977-05-01/1955-06-02", "1977-05-0", "999-1-1 and 0999-01-01",
             "no date", "1955-06-02 1955-06-02"]

    def by_substring(text):
        return sorted({(col, d) for d, col in values.dates.items() if d in text})

    for text in texts:
        assert values.find(text) == by_substring(text), text
    table = pd.DataFrame({"term": texts + texts})
    found = identifiers_in_text({"events": table}, values, {"events": ["term"]})
    assert found == [("events", i, "term", col) for i, text in enumerate(texts + texts) for col, _ in by_substring(text)]


def test_reasons_a_score_is_missing_are_the_row_by_row_text(trial):
    code = next(iter(trial.derived_scores))
    p = trial.derived(code)
    columns = [c.code for c in p.components] + [g.column for g in p.required_grades] + list(p.participant)
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({c: np.where(rng.random(200) < 0.3, np.nan, 1.0) for c in columns})
    for g in p.grades:
        frame[g.column] = np.where(rng.random(200) < 0.2, "unknown", "none")
    labels = {c.code: trial.lab(c.code).label.lower() for c in p.components}
    labels.update({g.column: g.label for g in p.required_grades})
    labels.update({v: v for v in p.participant})
    miss = pd.DataFrame({labels[c]: frame[c].isna() for c in labels})
    text = miss.apply(lambda r: ", ".join(k for k, v in r.items() if v), axis=1)
    text = (text + " missing").where(text != "", "")
    for c in (g.column for g in p.grades):
        unknown = frame[c].eq(adam.scores.GRADE_UNKNOWN).fillna(False).astype(bool)
        text = text.where(~unknown, text.where(text == "", text + "; ") + f"{c} {adam.scores.GRADE_UNKNOWN}")
    expected = ("not derivable: " + text).where(text != "", pd.NA)
    pd.testing.assert_series_equal(adam._not_derivable(frame, p, trial), expected, check_exact=True)


def test_a_repeated_header_is_found_where_the_header_reappears(tmp_path):
    path = tmp_path / "labs.csv"
    path.write_text("subject_id,visit\n01-001,BASELINE\n Subject_ID , VISIT \n01-002,WEEK4\n,\n", encoding="utf-8")
    errors = []
    table = loading.read_raw(path, [], errors)
    assert [e.rule for e in errors] == ["repeated_header"] and errors[0].row == 3
    assert table["subject_id"].tolist() == ["01-001", "01-002"]
    assert re.search("repeats the header", errors[0].message)
