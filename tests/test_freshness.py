"""Which notebooks are stale: a notebook re-runs only when its source, the helpers, the data, the trial file or the
parameters changed; an unchanged build does nothing. Tested by what runs, never by timings."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from conftest import write_tiny_notebook

from helpers import freshness, paths, pipeline


def _notebook(path: Path, source: str, prose: str = "# A chapter") -> Path:
    return write_tiny_notebook(path, source, prose)


def _common(**params):
    return freshness.common_key("synthetic", paths.trial_file(paths.DEFAULT_TRIAL),
                                {"data": "synthetic", "seed": None, "cutoff": None, "blinded": False} | params)


def test_a_notebook_key_follows_its_cells_not_its_outputs(tmp_path):
    nb = _notebook(tmp_path / "01_a.ipynb", "1 + 1")
    key = freshness.notebook_key(nb, _common())
    executed = nbformat.read(nb, as_version=4)
    executed.cells[-1].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    executed.cells[-1].execution_count = 1
    nbformat.write(executed, nb)
    assert freshness.notebook_key(nb, _common()) == key
    _notebook(nb, "1 + 1", prose="# A chapter, edited")
    assert freshness.notebook_key(nb, _common()) != key


@pytest.mark.parametrize("change", ["seed", "cutoff", "blinded", "helpers", "trial file", "blinding key"])
def test_a_change_every_notebook_depends_on_makes_every_notebook_stale(tmp_path, monkeypatch, change):
    nbs = [_notebook(tmp_path / f"0{i}_x.ipynb", f"{i}") for i in (1, 2)]
    before = _common()
    if change == "seed":
        after = _common(seed=3)
    elif change == "cutoff":
        after = _common(cutoff="2025-10-01")
    elif change == "blinded":
        after = _common(blinded=True)
    elif change == "helpers":
        monkeypatch.setattr(freshness, "helpers_hash", lambda: "edited")
        after = _common()
    elif change == "blinding key":
        monkeypatch.setenv("BLINDING_KEY", "secret")
        after = _common()
    else:
        trial = tmp_path / "trial.yaml"
        trial.write_text(paths.trial_file(paths.DEFAULT_TRIAL).read_text() + "\n# edited\n")
        after = freshness.common_key("synthetic", trial, {"data": "synthetic"})
        before = freshness.common_key("synthetic", paths.trial_file(paths.DEFAULT_TRIAL), {"data": "synthetic"})
    manifest = {"notebooks": {nb.name: {"key": freshness.notebook_key(nb, before), "files": []} for nb in nbs}}
    (tmp_path / "generated").mkdir()
    for nb in nbs:
        (tmp_path / "generated" / nb.name).write_text("{}")
    assert freshness.stale(nbs, before, manifest, tmp_path) == []
    assert freshness.stale(nbs, after, manifest, tmp_path) == nbs


def test_a_real_export_is_stale_when_one_of_its_files_changes(tmp_path):
    (tmp_path / "labs.csv").write_text("a\n1\n")
    trial = paths.trial_file(paths.DEFAULT_TRIAL)
    before = freshness.data_inputs(str(tmp_path), trial)
    (tmp_path / "labs.csv").write_text("a\n2\n")
    assert freshness.data_inputs(str(tmp_path), trial)["labs.csv"] != before["labs.csv"]
    assert freshness.data_inputs("synthetic", trial).keys() == {"trial file", "glossaries beside it"}


def test_a_missing_output_makes_its_notebook_stale(tmp_path):
    nb = _notebook(tmp_path / "01_a.ipynb", "1")
    common = _common()
    manifest = {"notebooks": {nb.name: {"key": freshness.notebook_key(nb, common), "files": ["results/a.csv"]}}}
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / nb.name).write_text("{}")
    assert freshness.stale([nb], common, manifest, tmp_path) == [nb]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.csv").write_text("x")
    assert freshness.stale([nb], common, manifest, tmp_path) == []


def test_builds_run_only_what_changed_and_reuse_the_rest(tmp_path):
    nbs, build = tmp_path / "notebooks", tmp_path / "_build"
    nbs.mkdir()
    write = "from pathlib import Path\nPath(output_dir, 'results', '{0}.csv').write_text('{0}')"
    _notebook(nbs / "01_a.ipynb", write.format("a"))
    _notebook(nbs / "02_b.ipynb", write.format("b"))
    logs: list[str] = []
    pipeline.run(build_dir=build, notebook_dir=nbs, log=logs.append, jobs=2)
    assert "[run] 2 of 2 notebook(s) to run, 2 at a time: 01_a.ipynb, 02_b.ipynb" in logs
    logs.clear()
    pipeline.run(build_dir=build, notebook_dir=nbs, log=logs.append)
    assert logs == [f"[build] nothing changed since the published build in {build}: it is current"]
    _notebook(nbs / "02_b.ipynb", write.format("b"), prose="# B, edited")
    logs.clear()
    pipeline.run(build_dir=build, notebook_dir=nbs, log=logs.append)
    assert "[run] 1 of 2 notebook(s) to run, 1 at a time: 02_b.ipynb" in logs
    assert (build / "results" / "a.csv").read_text() == "a" and (build / "results" / "b.csv").read_text() == "b"
    manifest = json.loads((build / "generated" / "manifest.json").read_text())
    assert manifest["notebooks"]["01_a.ipynb"]["files"] == ["results/a.csv"]
    logs.clear()
    pipeline.run(build_dir=build, notebook_dir=nbs, log=logs.append, seed=11)
    assert "[run] 2 of 2 notebook(s) to run, 2 at a time: 01_a.ipynb, 02_b.ipynb" in logs
    assert freshness.is_current(build, "synthetic", paths.trial_file(paths.DEFAULT_TRIAL), 11, None, False, False, nbs)
    assert not freshness.is_current(build, "synthetic", paths.trial_file(paths.DEFAULT_TRIAL), 11, None, False, True, nbs)


def test_parallel_notebooks_leave_the_working_directory_as_it_was(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for name in ("01_a", "02_b", "03_c"):
        _notebook(nbs / f"{name}.ipynb", "import os\nprint(os.getcwd())")
    before = Path.cwd()
    pipeline.run(build_dir=tmp_path / "_build", notebook_dir=nbs, log=lambda *_: None, jobs=3)
    assert Path.cwd() == before
    executed = nbformat.read(tmp_path / "_build" / "generated" / "02_b.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["text"].strip() == str(nbs)
