"""Shared fixtures: the trial, the committed synthetic export, and a copy of it to break."""
from __future__ import annotations

import os
import shutil

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from helpers import paths  # noqa: E402
from helpers.adam import build_adam  # noqa: E402
from helpers.loading import load_export  # noqa: E402
from helpers.trial import load_trial  # noqa: E402


@pytest.fixture(scope="session")
def trial():
    return load_trial(paths.DEFAULT_TRIAL)


@pytest.fixture(scope="session")
def export(trial):
    return load_export(paths.SYNTHETIC, trial)


@pytest.fixture(scope="session")
def adam(export, trial):
    return build_adam(export, trial)


@pytest.fixture()
def export_copy(tmp_path):
    """A writable copy of the committed synthetic export."""
    dest = tmp_path / "export"
    shutil.copytree(paths.SYNTHETIC, dest)
    return dest
