"""Project contracts: pinned environments agree, the two commands are documented, trial files and schema hold."""
from __future__ import annotations

import re

import pytest
import yaml

from helpers import paths
from helpers.data.schema import data_dictionary, data_dictionary_markdown, export_spec
from helpers.trial import TrialFileError, load_trial


def _lock_pins() -> dict[str, str]:
    lines = (paths.ROOT / "requirements.lock").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def test_environment_yml_pins_exactly_the_lock():
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = dict(p.split("==") for p in pip if "==" in p)
    assert pins == _lock_pins()
    assert "python=3.11" in env["dependencies"]


def test_core_packages_are_pinned_and_jupyter_book_stays_on_1x():
    pins = {k.lower(): v for k, v in _lock_pins().items()}
    for name in ("jupyter-book", "pandas", "statsmodels", "seaborn", "papermill", "nbval", "faker", "numpy", "scipy"):
        assert name in pins, name
    assert pins["jupyter-book"].startswith("1.")


def test_readme_gives_the_two_commands_and_ci_runs_the_test_command():
    readme = (paths.ROOT / "README.md").read_text()
    first_commands = re.findall(r"^\s*(make \w+)", readme, flags=re.M)[:2]
    assert first_commands == ["make book", "make test"]
    assert "make test" in (paths.ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("trial_id, n, arms", [("NCT06984497", 32, ["PV", "HA"]),
                                                ("NCT06242405", 92, ["SINGLE", "DOUBLE"])])
def test_trial_files_load(trial_id, n, arms):
    trial = load_trial(trial_id)
    assert (trial.planned_n, trial.arm_codes) == (n, arms)
    assert trial.baseline_visit.code == "BASELINE"


def test_trial_file_errors_name_the_file_and_field(tmp_path):
    raw = yaml.safe_load((paths.TRIALS / "NCT06984497.yaml").read_text())
    raw["control_arm"] = "XX"
    raw["randomization"]["block_sizes"] = [3]
    raw["key_secondary"] = "FEV1"
    del raw["planned_n"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(TrialFileError, match=r"bad.yaml: missing field\(s\) planned_n"):
        load_trial(bad)
    raw["planned_n"] = 32
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(TrialFileError) as err:
        load_trial(bad)
    assert "control_arm 'XX'" in str(err.value) and "block size 3" in str(err.value)
    assert "key_secondary 'FEV1'" in str(err.value)


def test_data_dictionary_covers_every_schema_column_with_trial_codes(trial):
    dd = data_dictionary(trial)
    schema = export_spec(trial)
    assert len(dd) == sum(len(spec.columns) for spec in schema.values())
    arm_row = dd[(dd["File"] == "randomization.csv") & (dd["Column"] == "arm")].iloc[0]
    assert arm_row["Allowed values"] == "PV, HA"
    md = data_dictionary_markdown(trial)
    for spec in schema.values():
        assert f"## `{spec.name}.csv`" in md
    assert md.count("Direct identifier") == sum(len(s.identifiers) for s in schema.values())


def test_data_dictionary_counts_missing_cells_of_the_export(trial, export):
    dd = data_dictionary(trial, export.tables).set_index(["File", "Column"])
    labs = export["labs"]
    assert dd.loc[("labs.csv", "alt"), "Missing in this export"] == f"{int(labs['alt'].isna().sum())} of {len(labs)}"
    assert dd.loc[("screening.csv", "name"), "Missing in this export"] == ""
    assert "Missing in this export" not in data_dictionary(trial)
