"""Shared fixtures: the trial, a clean synthetic export (the exact shape of the contract, no real-world
quirks: unit tests keep their hand-checked numbers), and a copy of it to break. The committed, realistic
export in data/synthetic is exercised by the quirk corpus, the pipeline tests and nbval."""
from __future__ import annotations

import os
import shutil

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from helpers import paths  # noqa: E402
from helpers.data.adam import build_adam  # noqa: E402
from helpers.data.loading import load_export  # noqa: E402
from helpers.data.simulation import simulate_export, write_export  # noqa: E402
from helpers.trial import load_trial  # noqa: E402


@pytest.fixture(scope="session")
def trial():
    return load_trial(paths.DEFAULT_TRIAL)


@pytest.fixture(scope="session")
def clean_dir(trial, tmp_path_factory):
    """The trial's synthetic export without real-world quirks (simulate_export(realistic=False))."""
    folder = tmp_path_factory.mktemp("clean_export")
    write_export(simulate_export(trial, realistic=False), folder)
    return folder


@pytest.fixture(scope="session")
def export(trial, clean_dir):
    return load_export(clean_dir, trial)


@pytest.fixture(scope="session")
def adam(export, trial):
    return build_adam(export, trial)


@pytest.fixture()
def export_copy(tmp_path, clean_dir):
    """A writable copy of the clean synthetic export."""
    dest = tmp_path / "export"
    shutil.copytree(clean_dir, dest)
    return dest


def write_tiny_notebook(path, source: str, prose: str | None = None):
    """A small chapter for pipeline tests: an optional markdown cell, a ``parameters`` cell, one code cell."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = ([nbformat.v4.new_markdown_cell(prose)] if prose else []) + [
        nbformat.v4.new_code_cell('data = "synthetic"\ntrial = "x"\nseed = None\noutput_dir = None'),
        nbformat.v4.new_code_cell(source)]
    nb.cells[-2].metadata["tags"] = ["parameters"]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path
