"""The trial file as a typed plan: a wrong or missing key is a TrialFileError that names the file, the key path and
what is wrong (never a KeyError or TypeError); optional keys stay optional."""
from __future__ import annotations

import copy

import pytest
import yaml

from helpers import paths
from helpers.trial import (
    SIMULATION_DEFAULTS,
    SIMULATION_MODEL_KEYS,
    TRIAL_FILE_SCHEMA,
    TrialFileError,
    load_trial,
    trial_from_mapping,
)

MAIN = paths.TRIALS / "NCT06984497.yaml"


def _raw() -> dict:
    return yaml.safe_load(MAIN.read_text(encoding="utf-8"))


def _load(tmp_path, change):
    raw = _raw()
    change(raw)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_trial(path)


def _error(tmp_path, change) -> str:
    with pytest.raises(TrialFileError) as err:
        _load(tmp_path, change)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "edited.yaml") + ": "), "the error names the file first"
    return message


def _set(path: tuple, value):
    """A change that sets the key at ``path`` (keys and list indices) to ``value``."""
    def change(raw):
        node = raw
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return change


def _delete(path: tuple):
    def change(raw):
        node = raw
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return change


@pytest.mark.parametrize("change, expected", [
    (_set(("planned_n",), "thirty"), "planned_n must be a whole number of at least 1, got 'thirty'"),
    (_set(("accrual_months",), 0), "accrual_months must be a whole number of at least 1, got 0"),
    (_delete(("visits", 2, "week")), "visits[2].week is missing"),
    (_set(("visits", 1, "week"), 4.5), "visits[1].week must be a whole number, got 4.5"),
    (_delete(("arms", 0, "code")), "arms[0].code is missing"),
    (_set(("arms", 1, "ratio"), "one"), "arms[1].ratio must be a whole number of at least 1, got 'one'"),
    (_set(("visits", 2, "window"), [71]),
     "visits[2].window must be a pair [first day, last day] of whole numbers, first <= last, got [71]"),
    (_set(("visits", 2, "window"), 85),
     "visits[2].window must be a pair [first day, last day] of whole numbers, first <= last, got 85"),
    (_set(("visits", 2, "window"), [99, 71]),
     "visits[2].window must be a pair [first day, last day] of whole numbers, first <= last, got [99, 71]"),
    (_delete(("lab_panel", 3, "unit")), "lab_panel[3].unit is missing"),
    (_set(("lab_panel", 3, "units"), {"mg/dL": "x17.1"}),
     "lab_panel[3].units must be a mapping of unit to conversion factor, e.g. {mg/dL: 17.1}, got {'mg/dL': 'x17.1'}"),
    (_set(("lab_panel", 0, "impossible"), [100, 0]),
     "lab_panel[0].impossible must be a pair [low, high] of numbers, low <= high (null: unbounded), got [100, 0]"),
    (_set(("endpoints", 0, "better"), "up"), "endpoints[0].better must be one of 'lower', 'higher', got 'up'"),
    (_set(("endpoints", 0, "log"), "yes"), "endpoints[0].log must be true or false, got 'yes'"),
    (_set(("analysis_plan", "alpha"), 1.5), "analysis_plan.alpha must be a number strictly between 0 and 1, got 1.5"),
    (_set(("analysis_plan", "alpha"), "5%"), "analysis_plan.alpha must be a number strictly between 0 and 1, got '5%'"),
    (_set(("primary_endpoint", "horizon_days"), "24 weeks"),
     "primary_endpoint.horizon_days must be a whole number of at least 1, got '24 weeks'"),
    (_delete(("primary_endpoint", "code")), "primary_endpoint.code is missing"),
    (_set(("primary_endpoint", "kind"), "binary"),
     "primary_endpoint.kind must be one of 'time_to_event', 'continuous', got 'binary'"),
    (_set(("treatment", "start"), "consent"),
     "treatment.start must be one of 'first_dose', 'randomization', got 'consent'"),
    (_set(("randomization", "block_sizes"), 4), "randomization.block_sizes must be a list of whole numbers of at least 1, got 4"),
    (_set(("randomization", "seed"), "lucky"), "randomization.seed must be a whole number, got 'lucky'"),
    (_set(("randomization", "accrual_start"), "July 2025"),
     "randomization.accrual_start must be a date (YYYY-MM-DD), got 'July 2025'"),
    (_set(("cutoff",), "2025-13-01"), "cutoff must be a date (YYYY-MM-DD), got '2025-13-01'"),
    (_set(("eligibility", "age"), [18]), "eligibility.age must be a pair [youngest, oldest] of whole numbers of years, got [18]"),
    (_delete(("eligibility", "exclusion", 0, "label")), "eligibility.exclusion[0].label is missing"),
    (_set(("baseline_covariates", 1, "type"), "ordinal"),
     "baseline_covariates[1].type must be one of 'continuous', 'categorical', got 'ordinal'"),
    (_set(("time_to_event", 0, "events"), "DEATH"), "time_to_event[0].events must be a list of text, got 'DEATH'"),
    (_set(("simulation", "death_rate_24w"), 15), "simulation.death_rate_24w must be a proportion from 0 to 1, got 15"),
    (_set(("arms",), {"PV": "Peripheral vein"}), "arms must be a list, got {'PV': 'Peripheral vein'}"),
    (_set(("randomization",), "permuted blocks"), "randomization must be a mapping of method, block_sizes"),
    (_set(("visits", 0, "windw"), [-14, 1]), "visits[0]: unknown key(s) windw (known: code, label, week, day, window)"),
    (_set(("treatment", "dose"), 1), "treatment: unknown key(s) dose (known: start, noun, route, dose_unit, dose_range)"),
])
def test_a_wrong_key_is_named_with_what_is_wrong(tmp_path, change, expected):
    assert expected in _error(tmp_path, change)


def test_an_unknown_top_level_key_lists_the_known_ones(tmp_path):
    message = _error(tmp_path, _set(("alpah",), 0.05))
    assert "unknown top-level key(s) alpah (known: id, title, short_title," in message
    assert all(k in message for k in ("analysis_plan", "primary_endpoint", "simulation"))


def test_missing_required_keys_come_first_and_every_problem_is_reported_in_one_pass(tmp_path):
    def change(raw):
        del raw["planned_n"], raw["visits"][0]["window"]
        raw["endpoints"][4]["better"] = "up"
        raw["analysis_plan"]["alpha"] = 1.5
    message = _error(tmp_path, change)
    assert message.split(": ", 1)[1].startswith("missing field(s) planned_n")
    for part in ("visits[0].window is missing", "endpoints[4].better must be one of", "analysis_plan.alpha must be"):
        assert part in message


def test_a_file_that_is_not_a_mapping_or_not_yaml_is_named(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- id: X\n", encoding="utf-8")
    with pytest.raises(TrialFileError, match="list.yaml: the trial file must be a mapping of keys"):
        load_trial(path)
    path = tmp_path / "broken.yaml"
    path.write_text("id: [X\n", encoding="utf-8")
    with pytest.raises(TrialFileError, match="broken.yaml: not valid YAML"):
        load_trial(path)


def test_optional_keys_may_be_absent_or_left_empty(tmp_path):
    optional = [k for k, (_, required) in TRIAL_FILE_SCHEMA.items() if not required]
    drop = {"lab_panel", "endpoints", "key_secondary", "baseline_covariates", "time_to_event", "events",
            "clinical_assessments", "derived_parameters"}

    def empty(raw):
        for k in optional:
            if k not in drop:
                raw[k] = None
        raw["arms"][0]["description"] = None
        raw["arms"][0]["ratio"] = None
        raw["primary_endpoint"]["label"] = None
    trial = _load(tmp_path, empty)
    assert trial.short_title == trial.title and trial.site == "" and trial.alpha == 0.05
    assert trial.followup_weeks == 24 and trial.primary_test == "fisher" and trial.cutoff is None
    assert trial.age_range is None and trial.eligibility == () and trial.treatment.start == "first_dose"
    assert trial.arms[0].description == trial.arms[0].label and trial.arms[0].ratio == 1
    assert trial.primary_endpoint.label == trial.primary_endpoint.code
    assert trial.simulation.defaulted == list(SIMULATION_DEFAULTS)


def _paths(node, path=()):
    """Every key path of a parsed trial file (sections, items and leaves)."""
    yield path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, path + (k,))


def test_no_wrong_value_anywhere_gives_anything_but_a_trial_file_error(tmp_path):
    """Each key of the main trial file in turn deleted, or given a wrong type: the file loads or is refused with a
    TrialFileError, never a KeyError, TypeError or ValueError from deep inside."""
    raw = _raw()
    keys = [p for p in _paths(raw) if p]
    assert len(keys) > 300
    for path in keys:
        for junk in (_delete(path), _set(path, {"x": 1}), _set(path, [[1]]), _set(path, "x"), _set(path, -1)):
            edited = copy.deepcopy(raw)
            junk(edited)
            try:
                trial_from_mapping(edited, tmp_path / "junk.yaml")
            except TrialFileError:
                pass
            except Exception as e:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{'/'.join(map(str, path))}: {type(e).__name__}: {e}")


def test_the_schema_knows_every_simulation_assumption():
    assert set(TRIAL_FILE_SCHEMA["simulation"][0]) == (set(SIMULATION_DEFAULTS) | {"effects", "doses_per_arm"}
                                                       | set(SIMULATION_MODEL_KEYS))


def test_the_three_trial_files_fit_the_schema():
    for name in ("NCT06984497", "NCT06242405", "DEMO-ORAL"):
        assert load_trial(name).id == name


# --- rules of the plan, each one method ------------------------------------------------------------------------

def test_study_day_one_is_the_first_dose_else_randomization():
    import dataclasses

    import pandas as pd

    trial = load_trial()
    dose = pd.Series(pd.to_datetime(["2025-07-03", None]), index=["S1", "S2"])
    rand = pd.Series(pd.to_datetime(["2025-07-01", "2025-07-02"]), index=["S1", "S2"])
    assert trial.day_one(dose, rand).dt.strftime("%d").tolist() == ["03", "02"], "first dose; not dosed: randomization"
    oral = dataclasses.replace(trial, treatment=dataclasses.replace(trial.treatment, start="randomization"))
    assert oral.day_one(dose, rand).dt.strftime("%d").tolist() == ["01", "02"]
    assert trial.has_dosing_file and not oral.has_dosing_file
    assert trial.doses_recorded(0) and not oral.doses_recorded(0) and oral.doses_recorded(3)


def test_study_days_and_window_dates_have_no_day_zero():
    import pandas as pd

    from helpers.trial import date_of_study_day, study_day

    day1 = pd.Series(pd.to_datetime(["2025-07-10"] * 4))
    dates = pd.Series(pd.to_datetime(["2025-07-10", "2025-07-09", "2025-08-07", "2025-06-26"]))
    assert study_day(dates, day1).tolist() == [1, -1, 29, -14]
    for day in (1, -1, 29, -14):
        assert study_day(date_of_study_day(day1, day), day1).tolist() == [day] * 4
    visit = load_trial().visit("WEEK4")  # day 29, window [22, 36]
    assert str(visit.target_on(pd.Timestamp("2025-07-10")).date()) == "2025-08-07"
    assert str(visit.opens_on(pd.Timestamp("2025-07-10")).date()) == "2025-07-31"
    assert str(visit.closes_on(pd.Timestamp("2025-07-10")).date()) == "2025-08-14"
    assert [visit.holds(d) for d in (21, 22, 36, 37)] == [False, True, True, False]
    assert visit.holds(pd.Series([21, 22, None], dtype="Int64")).tolist() == [False, True, pd.NA]


def test_the_horizon_is_assessed_by_the_visit_whose_window_holds_it():
    import dataclasses

    trial = load_trial()
    assert trial.horizon_visit.code == "WEEK24" and trial.horizon_assessed_from == 155
    beyond = dataclasses.replace(trial, primary_endpoint=dataclasses.replace(trial.primary_endpoint, horizon_days=200))
    assert beyond.horizon_visit is None and beyond.horizon_assessed_from == 200
