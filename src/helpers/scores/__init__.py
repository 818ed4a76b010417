"""Derived parameters by name: one registry of score functions, each stating its components and their units.

A derived parameter is a value computed from other measurements of the same participant and visit (a clinical
score, an estimated rate). Each is registered once, by a plug-in module of this package named for its field
(``helpers.scores.<field>``), and chosen by its code in the trial file. The rest of the code never names one:
it builds the frame a parameter asks for and calls :func:`derive`.

The frame ``compute`` receives has one row per sample and the columns the parameter states:

* each laboratory component under its code (``TBIL``), converted to the unit the component states;
* each clinical-assessment grade under its export column (as recorded: a level, ``"Y"``/``"N"`` for a flag);
* each participant variable under its ADSL name (``AGE``, ``SEX``).

:func:`derive` calls ``compute`` only on the rows where every required input is present and no grade is
"present, grade unknown"; every other row is missing (a component is never imputed).

This module is core (it imports nothing of the data, analysis or report layers), so the trial file's
validation can ask it which codes exist and what they need.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

# A finding recorded as present without its grade: a score that needs the grade is not derivable.
GRADE_UNKNOWN = "present, grade unknown"


@dataclass(frozen=True)
class Component:
    """A laboratory test a parameter needs: its code in the trial's lab panel and the unit ``compute`` expects.
    ``factors``: other units the registry can convert from, each with the factor to ``unit`` (value x factor)."""
    code: str
    unit: str
    factors: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Grade:
    """A clinical-assessment column a parameter reads. ``levels``: the accepted grades, best first (empty: a Y/N
    flag). ``required``: False when a missing value has a stated meaning for the score (e.g. no flag = "N")."""
    column: str
    label: str
    levels: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class Classes:
    """The classes of a parameter (e.g. grades of a points score): their code (an ADSL/ADLB name), label,
    levels in display order (best first), ``of`` mapping parameter values (a Series) to class labels, and
    ``definition``: the cut-points and source as a table note states them."""
    code: str
    label: str
    levels: tuple[str, ...]
    of: Callable[[pd.Series], pd.Series]
    definition: str = ""


@dataclass(frozen=True)
class DerivedParameter:
    """One derived parameter: ADLB PARAMCD ``code``, its label and unit, what it is computed from, how.

    ``compute(frame) -> values`` (see the module docstring for the frame); ``reference``: the published
    definition implemented."""
    code: str
    label: str
    unit: str
    components: tuple[Component, ...]
    compute: Callable[[pd.DataFrame], object]
    grades: tuple[Grade, ...] = ()
    participant: tuple[str, ...] = ()
    classes: Classes | None = None
    reference: str = ""

    @property
    def component_codes(self) -> list[str]:
        return [c.code for c in self.components]

    @property
    def required_grades(self) -> list[Grade]:
        return [g for g in self.grades if g.required]

    def needs(self) -> str:
        """What the parameter is computed from, as an error message names it."""
        parts = [f"{c.code} ({c.unit})" for c in self.components] + [g.column for g in self.grades]
        return ", ".join(parts + list(self.participant))


REGISTRY: dict[str, DerivedParameter] = {}


def register(parameter: DerivedParameter) -> DerivedParameter:
    """Add a parameter to the registry (a plug-in module calls this once per parameter)."""
    if parameter.code in REGISTRY:
        raise ValueError(f"derived parameter {parameter.code} is registered twice")
    REGISTRY[parameter.code] = parameter
    return parameter


def get(code: str) -> DerivedParameter:
    """The registered parameter ``code``; KeyError naming the known codes otherwise."""
    if code not in REGISTRY:
        raise KeyError(f"no derived parameter {code!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[code]


def conversion(component: Component, lab) -> float | None:
    """Factor that takes a value in the panel test's unit (``lab``: a ``helpers.trial.LabTest``) to the unit
    the component needs; None when neither the component nor the panel states one."""
    from helpers.trial import unit_key

    if unit_key(lab.unit) == unit_key(component.unit):
        return 1.0
    own = {unit_key(u): f for u, f in component.factors}
    if unit_key(lab.unit) in own:
        return own[unit_key(lab.unit)]
    to_panel = lab.factor(component.unit)
    return None if to_panel is None else 1.0 / to_panel


def complete_rows(parameter: DerivedParameter, frame: pd.DataFrame) -> pd.Series:
    """Rows with every required input present and no grade recorded as "present, grade unknown"."""
    needed = parameter.component_codes + [g.column for g in parameter.required_grades] + list(parameter.participant)
    ok = frame[needed].notna().all(axis=1)
    for g in parameter.grades:
        ok &= ~frame[g.column].eq(GRADE_UNKNOWN).fillna(False).astype(bool)
    return ok


def derive(parameter: DerivedParameter, frame: pd.DataFrame) -> pd.Series:
    """The parameter on every row of ``frame`` (float, nan where not derivable), computed on complete rows only."""
    out = pd.Series(np.nan, index=frame.index, dtype=float, name=parameter.code)
    ok = complete_rows(parameter, frame)
    if ok.any():
        values = parameter.compute(frame[ok])
        out[ok] = pd.Series(values, index=frame.index[ok]).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return out


def _load_plugins() -> None:
    """Import every plug-in module of this package, so that each registers its parameters."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_load_plugins()
