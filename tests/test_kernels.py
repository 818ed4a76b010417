"""The build runs its chapters on a few long-lived kernels: each chapter still sees a fresh namespace, no figure
of the one before and execution counts from 1, and a failure stops the rest."""
from __future__ import annotations

import gc
import os
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from conftest import write_tiny_notebook
from helpers import pipeline

FIRST = """import json
json.kept_by_the_kernel = True
import matplotlib.pyplot as plt
fig = plt.figure()
x = 41
x + 1"""
SECOND = """import json
import matplotlib.pyplot as plt
(getattr(json, "kept_by_the_kernel", False), "x" in globals(), "fig" in globals(), plt.get_fignums())"""


def _run(tmp_path, sources: dict[str, str], kernels: int):
    nbs = {name: write_tiny_notebook(tmp_path / f"{name}.ipynb", source) for name, source in sources.items()}
    ran = []

    def run(nb, km):
        ran.append(nb.name)
        out = tmp_path / "out" / nb.name
        out.parent.mkdir(exist_ok=True)
        pipeline.execute(nb, out, km=km)
        return nbformat.read(out, as_version=4)

    return pipeline.run_on_kernels(list(nbs.values()), kernels, run), ran


def _result(nb) -> tuple[list[int], str]:
    code = [c for c in nb.cells if c.cell_type == "code"]
    return [c.execution_count for c in code], code[-1].outputs[-1]["data"]["text/plain"]


def test_a_chapter_on_a_used_kernel_sees_a_fresh_namespace_and_counts_from_one(tmp_path):
    done, ran = _run(tmp_path, {"a": FIRST, "b": SECOND}, kernels=1)
    assert ran == ["a.ipynb", "b.ipynb"]
    assert _result(done["a.ipynb"]) == ([1, 2], "42")
    counts, shown = _result(done["b.ipynb"])
    assert counts == [1, 2]
    assert shown == "(True, False, False, [])", "imports kept (one kernel); names and figures of 'a' gone"


def test_the_first_failure_stops_the_chapters_not_yet_started(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="ZeroDivisionError"):
        _run(tmp_path, {"a": "1", "b": "1 / 0", "c": "2"}, kernels=1)
    assert not (tmp_path / "out" / "c.ipynb").exists()


def test_chapters_share_the_kernels_given(tmp_path):
    done, ran = _run(tmp_path, {name: "1 + 1" for name in "abcd"}, kernels=2)
    assert sorted(ran) == ["a.ipynb", "b.ipynb", "c.ipynb", "d.ipynb"]
    assert all(_result(nb) == ([1, 2], "2") for nb in done.values())


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts open files in /proc")
def test_running_chapters_leaves_no_file_open(tmp_path):
    """A process that builds again and again (the tests, ``make preview``) keeps no kernel client, kernel or event
    loop open: nbclient leaves open the client of a kernel it was given, so the build closes it."""
    def open_files() -> int:
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    sources = {name: "1 + 1" for name in "abc"}
    (tmp_path / "0").mkdir()
    _run(tmp_path / "0", sources, kernels=2)
    before = open_files()
    for i in range(1, 4):
        (tmp_path / str(i)).mkdir()
        _run(tmp_path / str(i), sources, kernels=2)
    assert open_files() <= before
