"""The design chapter's results kept across builds (``design.design_results``): read back exactly as computed,
reused by a new export or cut-off, computed again when the trial's design, the replicates or the code change, or
when the kept file cannot be read."""
from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers import cache, paths, pipeline
from helpers.analysis import design

REPLICATES = 2


def _no_simulation(*args, **kwargs):
    raise AssertionError("simulate_design ran: the kept results were not read")


def _assert_same(a: tuple[pd.DataFrame, pd.DataFrame], b: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y, check_exact=True)


@pytest.fixture(scope="module")
def kept(trial, tmp_path_factory):
    """The results of a first call, the folder they are kept in, and their file."""
    folder = tmp_path_factory.mktemp("design-cache")
    result = design.design_results(trial, REPLICATES, cache_dir=folder)
    files = list(folder.iterdir())
    assert [f.name for f in files] == [f"{design.design_key(trial, REPLICATES)}.pickle"]
    return result, folder, files[0]


def test_the_first_call_computes_what_the_chapter_computed(kept, trial):
    result, _, _ = kept
    reps = design.simulate_design(trial, design.default_scenarios(trial), replicates=REPLICATES)
    _assert_same(result, (reps, design.operating_characteristics(reps, trial)))
    assert set(result[0]["replicate"]) == set(range(REPLICATES))


def test_a_second_call_reads_the_kept_results(kept, trial, monkeypatch):
    result, folder, _ = kept
    monkeypatch.setattr(design, "simulate_design", _no_simulation)
    _assert_same(design.design_results(trial, REPLICATES, cache_dir=folder), result)


def test_a_new_cutoff_or_export_reuses_them(kept, trial, tmp_path, monkeypatch):
    result, folder, _ = kept
    monkeypatch.setattr(design, "simulate_design", _no_simulation)
    copy = tmp_path / "trial.yaml"
    shutil.copy(trial.source, copy)
    for other in (dataclasses.replace(trial, cutoff=dt.date(2025, 1, 1)),
                  dataclasses.replace(trial, export_mapping=tmp_path / "mapping.yaml"),
                  dataclasses.replace(trial, source=copy)):
        assert design.design_key(other, REPLICATES) == design.design_key(trial, REPLICATES)
        _assert_same(design.design_results(other, REPLICATES, cache_dir=folder), result)


def test_the_design_the_replicates_or_the_code_change_the_key(trial, tmp_path, monkeypatch):
    key = design.design_key(trial, REPLICATES)
    simulation = dataclasses.replace(trial.simulation, withdrawal_rate=trial.simulation.withdrawal_rate + 0.01)
    assert design.design_key(trial, REPLICATES + 1) != key
    assert design.design_key(dataclasses.replace(trial, planned_n=trial.planned_n + 4), REPLICATES) != key
    assert design.design_key(dataclasses.replace(trial, simulation=simulation), REPLICATES) != key
    assert design.design_key(dataclasses.replace(trial, alpha=0.025), REPLICATES) != key
    source = tmp_path / "helpers" / "analysis" / "design.py"
    source.parent.mkdir(parents=True)
    source.write_text("x = 1\n")
    monkeypatch.setattr(design, "design_sources", lambda: [source])
    monkeypatch.setattr(design, "__file__", str(source))
    first = design.design_key(trial, REPLICATES)
    source.write_text("x = 2\n")
    assert design.design_key(trial, REPLICATES) != first


def test_the_key_does_not_depend_on_the_order_of_a_set(trial):
    stated = trial.simulation.stated
    reordered = dataclasses.replace(trial, simulation=dataclasses.replace(trial.simulation,
                                                                          stated=frozenset(sorted(stated, reverse=True))))
    assert design.design_key(reordered, REPLICATES) == design.design_key(trial, REPLICATES)


def test_the_sources_are_what_the_simulation_runs():
    src = Path(design.__file__).resolve().parents[1]
    found = {p.relative_to(src).as_posix() for p in design.design_sources()}
    expected = {"analysis/design.py", "analysis/mmrm.py", "analysis/outcomes.py", "analysis/survival.py",
                "analysis/findings.py", "data/simulation.py", "data/adam.py", "data/randomization.py", "trial.py"}
    expected |= {f"scores/{p.name}" for p in (src / "scores").glob("*.py")}
    assert expected <= found
    assert not any(name.startswith("report/") for name in found)


@pytest.mark.parametrize("content", [b"", b"not a pickle", b"\x80\x05garbage"])
def test_a_corrupt_file_is_computed_again(kept, trial, tmp_path, content):
    result, folder, kept_file = kept
    copy = tmp_path / "cache"
    shutil.copytree(folder, copy)
    (copy / kept_file.name).write_bytes(content)
    _assert_same(design.design_results(trial, REPLICATES, cache_dir=copy), result)
    _assert_same(cache.read(copy / kept_file.name, lambda v: True), result)
    assert [f.name for f in copy.iterdir()] == [kept_file.name]


def test_the_default_folder_is_under_the_builds_trees():
    assert paths.DESIGN_CACHE.parent == paths.BUILD_CACHE
    assert paths.BUILD_CACHE.parent == pipeline.trees_dir(paths.BUILD)
    assert paths.BUILD_CACHE.name == pipeline.CACHE


def test_publishing_a_build_keeps_the_cache(tmp_path):
    build_dir = tmp_path / "_build"
    trees = pipeline.trees_dir(build_dir)
    kept = trees / pipeline.CACHE / "design" / "x.pickle"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"kept")
    for run in range(2):
        tree = trees / f"staging-{run}" / "tree"
        tree.mkdir(parents=True)
        (tree / "index.html").write_text(str(run))
        pipeline.publish(tree, build_dir)
    assert (build_dir / "index.html").read_text() == "1"
    assert kept.read_bytes() == b"kept"
