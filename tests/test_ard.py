"""The analysis results dataset: every result table is a view of it, its rows are the stored results of the clean
export, it reads back exactly, and the verdicts taken from it are those of the result tables."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers import cache, paths
from helpers.analysis import ard as A
from helpers.analysis import findings
from helpers.analysis.results import Results, kept_results
from helpers.data.adam import analysis_records
from tolerances import assert_frame_close

REFERENCE = paths.ROOT / "tests" / "fixtures" / "clean_results"


@pytest.fixture(scope="module")
def results(export, adam, trial, tmp_path_factory):
    return Results(export, adam["adsl"], analysis_records(adam["adlb"]), adam["adtte"], trial).compute_all()


@pytest.fixture(scope="module")
def tables(results):
    return results.tables()


@pytest.fixture(scope="module")
def ard(tables, trial):
    return A.build_ard(tables, trial)


def _csv(table: pd.DataFrame) -> str:
    return table.to_csv(index=False, float_format="%.10g", lineterminator="\n")


def test_every_result_table_is_a_view_of_the_ard(tables, ard):
    """Each table rebuilt from the ARD writes the same CSV bytes as the table itself."""
    assert set(ard["RESULT"]) == {name for name, t in tables.items() if len(t)}
    for name, table in tables.items():
        assert _csv(A.result_table(ard, name, list(table.columns))) == _csv(table), name


def test_the_chapters_views_are_the_computed_tables_value_for_value_and_type_for_type(results):
    """What a chapter shows (``Results.view`` and friends) equals what was computed: counts stay integers, text
    stays text, logicals logicals, and every number is the computed one exactly."""
    for name, table in results.tables().items():
        view = results.view(name)
        pd.testing.assert_frame_equal(view, table.reset_index(drop=True), check_dtype=False, check_exact=True,
                                      obj=name)
        for column in table.columns:
            kinds = {pd.api.types.is_integer_dtype, pd.api.types.is_float_dtype, pd.api.types.is_bool_dtype}
            assert {k for k in kinds if k(table[column].dtype)} == {k for k in kinds if k(view[column].dtype)}, \
                (name, column, table[column].dtype, view[column].dtype)
    pd.testing.assert_frame_equal(results.balance_view(), results.balance.reset_index(drop=True), check_exact=True)
    computed, shown = results.sensitivity, results.sensitivity_view()
    for key in ("results", "grid", "mi"):
        pd.testing.assert_frame_equal(shown[key], computed[key].reset_index(drop=True), check_dtype=False,
                                      check_exact=True, obj=key)
    assert shown["tipping"].keys() == computed["tipping"].keys()
    for arm, point in computed["tipping"].items():
        assert shown["tipping"][arm].keys() == point.keys()
        assert all(shown["tipping"][arm][k] == v or (pd.isna(v) and pd.isna(shown["tipping"][arm][k]))
                   for k, v in point.items()), arm


def test_a_view_restores_each_type_even_with_missing_values(trial):
    """Integers with a gap come back as nullable integers, a column of mixed values value by value."""
    table = pd.DataFrame({"TRT01P": ["A", "B", "C"], "n": pd.array([3, None, 5], dtype="Int64"),
                          "flag": [True, False, True], "note": ["", "x", None],
                          "mixed": pd.Series([1, "two", 2.5], dtype=object)})
    ard = A.build_ard({"tipping_point": table}, trial)
    assert ard["STAT_TYPE"].tolist() == ["integer", "logical", "text", "integer", "integer", "logical", "text", "text",
                                         "integer", "logical", "text", "real"]
    view = A.result_table(ard, "tipping_point", list(table.columns))
    assert str(view["n"].dtype) == "Int64" and view["n"].tolist()[::2] == [3, 5] and view["n"].isna().tolist()[1]
    assert view["flag"].dtype == bool and view["flag"].tolist() == [True, False, True]
    assert view["note"].tolist()[:2] == ["", "x"] and pd.isna(view["note"].iloc[2])
    assert view["mixed"].tolist() == [1, "two", 2.5] and isinstance(view["mixed"].iloc[0], int)


def test_the_ard_rows_are_the_stored_results_of_the_clean_export(ard):
    """Today's result CSVs of the clean export (tests/fixtures/clean_results), read from the ARD."""
    for expected in sorted(REFERENCE.glob("*.csv")):
        ref = pd.read_csv(expected)
        built = pd.read_csv(pd.io.common.StringIO(_csv(A.result_table(ard, expected.stem, list(ref.columns)))))
        assert_frame_close(built, ref, f"{expected.name} from the ARD", significant_digits=10)


def test_each_row_says_what_it_is(ard):
    assert list(ard.columns) == A.COLUMNS
    assert not ard.duplicated(["RESULT", "ROW", "STAT_NAME"]).any()
    for column in ("ANALYSIS_ID", "RESULT", "ROLE", "POPULATION", "STAT_NAME", "METHOD"):
        assert ard[column].notna().all() and (ard[column] != "").all(), column
    assert not (ard["STAT"].notna() & ard["STAT_TEXT"].notna()).any()
    assert set(ard["STAT_TYPE"].dropna()) <= {"integer", "real", "logical", "text"}
    assert (ard.loc[ard["STAT_TEXT"].notna(), "STAT_TYPE"].isin(["logical", "text"])).all()
    assert (ard.loc[ard["STAT"].notna(), "STAT_TYPE"].isin(["integer", "real"])).all()
    counts = ard[(ard["RESULT"] == "survival") & (ard["STAT_NAME"].isin(["n", "events"]))]
    assert len(counts) and (counts["STAT_TYPE"] == "integer").all()
    assert set(ard["ROLE"]) == {"primary", "key secondary", "secondary", "sensitivity", "safety", "descriptive",
                                "design", "plan"}


def test_roles_populations_and_methods_follow_the_plan(ard, trial):
    mmrm = ard[(ard["RESULT"] == "mmrm") & (ard["STAT_NAME"] == "p")]
    roles = mmrm.groupby("PARAMCD")["ROLE"].first()
    assert roles[trial.key_secondary] == "key secondary"
    assert (roles.drop(trial.key_secondary) == "secondary").all()
    assert mmrm["METHOD"].str.startswith("MMRM, unstructured, REML, Satterthwaite df").all()
    assert (mmrm["DATASET"] == "ADLB").all() and (mmrm["GROUP1"] == "TRT01P").all()
    assert all(f.endswith(f"PARAMCD = '{code}'") for f, code in zip(mmrm["FILTER"], mmrm["PARAMCD"]))
    surv = ard[ard["RESULT"] == "survival"]
    assert set(surv.loc[surv["PARAMCD"] == trial.primary_endpoint.code, "ROLE"]) == {"primary"}
    ae = ard[ard["RESULT"] == "adverse_events"]
    assert set(ae["ROLE"]) == {"safety"} and set(ae["GROUP1"]) == {"TRT01A"} and ae["POPULATION"].str.startswith(
        "safety").all()
    assert set(ard.loc[ard["RESULT"] == "ancova", "ROLE"]) == {"sensitivity"}


def test_one_number_is_one_row(ard, tables, trial):
    """ard_value finds the key secondary endpoint's MMRM p-value at the last visit; an ambiguous query is refused."""
    mmrm = tables["mmrm"]
    row = mmrm[(mmrm["PARAMCD"] == trial.key_secondary) & (mmrm["AVISIT"] == trial.last_visit.label)].iloc[0]
    assert A.ard_value(ard, "p", RESULT="mmrm", PARAMCD=trial.key_secondary,
                       AVISIT=trial.last_visit.label) == row["p_value"]
    assert np.isnan(A.ard_value(ard, "p", RESULT="mmrm", PARAMCD="NO SUCH"))
    with pytest.raises(ValueError, match="name the row"):
        A.ard_value(ard, "p", RESULT="mmrm")


def test_the_verdicts_from_the_ard_are_those_of_the_tables(ard, results, trial):
    f = results.findings
    assert findings.ard_decisions(ard, trial) == findings.decisions(f.survival, f.mmrm, trial)
    p = [d.p_value for d in findings.ard_decisions(ard, trial)]
    assert all(np.isfinite(p))


def test_written_as_csv_and_json_it_reads_back_exactly(ard, tmp_path):
    csv_path, json_path = A.write_ard(ard, tmp_path)
    back = A.read_ard(csv_path)
    assert list(back.columns) == A.COLUMNS and len(back) == len(ard)
    assert np.array_equal(back["STAT"].to_numpy(), ard["STAT"].to_numpy(), equal_nan=True)
    for column in ("ANALYSIS_ID", "STAT_TEXT", "STAT_TYPE", "GROUP1_LEVEL", "METHOD"):
        assert back[column].tolist() == [None if pd.isna(v) or v == "" else v for v in ard[column]], column
    records = json.loads(json_path.read_text(encoding="utf-8"))
    assert len(records) == len(ard) and set(records[0]) == set(A.COLUMNS)
    assert [r["STAT"] for r in records[:50]] == [None if np.isnan(v) else v for v in ard["STAT"][:50]]
    assert not list(tmp_path.glob(".ard*")), "no temporary file is left"


def test_an_infinite_value_is_written_and_read_back(trial, tmp_path):
    """A tipping point beyond the grid is infinite: the CSV says inf, the JSON (which has no infinity) "Infinity"."""
    points = pd.DataFrame({"TRT01P": ["Drug", "Other"], "delta": [np.inf, 1.5], "grid_max": [2.0, -np.inf]})
    ard = A.build_ard({"tipping_point": points}, trial)
    csv_path, json_path = A.write_ard(ard, tmp_path)
    assert np.array_equal(A.read_ard(csv_path)["STAT"].to_numpy(), ard["STAT"].to_numpy())
    assert [r["STAT"] for r in json.loads(json_path.read_text(encoding="utf-8"))] == ["Infinity", 2.0, 1.5,
                                                                                       "-Infinity"]
    assert _csv(A.result_table(ard, "tipping_point", list(points.columns))) == _csv(points)


def test_a_table_without_a_layout_is_named():
    with pytest.raises(KeyError, match="no_such_table"):
        A.layout("no_such_table")


def test_kept_results_are_read_back_whole_and_a_damaged_entry_is_computed_again(results, tmp_path):
    inputs = {"helpers": "abc", "params": {"seed": None}}
    assert kept_results(results, inputs, tmp_path) is results
    kept = kept_results(Results(results.export, results.adsl, results.adlb, results.adtte, results.trial),
                        inputs, tmp_path)
    assert kept is not results and kept.ard.equals(results.ard)
    [entry] = tmp_path.glob("*.pickle")
    entry.write_bytes(b"\x80\x05garbage")
    assert kept_results(results, inputs, tmp_path) is results
    assert kept_results(results, inputs | {"params": {"seed": 7}}, tmp_path) is results
    assert len(list(tmp_path.glob("*.pickle"))) == 2
    for seed in range(cache.KEPT + 2):
        kept_results(results, inputs | {"params": {"seed": seed}}, tmp_path)
    assert len(list(tmp_path.glob("*.pickle"))) == cache.KEPT
    assert not list(tmp_path.glob(".*.tmp"))
