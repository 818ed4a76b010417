"""The liver-disease plug-in of the derived-parameter registry: MELD, MELD-Na and Child-Pugh from SI laboratory values.

This is the one module of the code that knows a disease: the trial files name these parameters by code
(MELD, MELDNA, CPSCORE; the Child-Pugh class CPCLASS), and the registry (``helpers.scores``) serves them.

Inputs are SI as reported by the site: bilirubin and creatinine in umol/L,
albumin in g/L, sodium in mmol/L, INR unitless. Every function accepts
scalars, numpy arrays or pandas Series (mixed freely; Series must share one
index) and returns the same kind:

* scalars in -> a Python ``int`` (``str`` for the class), or ``nan``
  (``pd.NA`` for the class) when an input is missing;
* arrays in -> a float array of whole numbers with ``nan`` for missing
  (object array with ``pd.NA`` for the class);
* any Series in -> a Series on that index, dtype ``Int64`` (``string`` for
  the class) with ``pd.NA`` for missing.

A missing input (``None``, ``nan``, ``pd.NA``) gives a missing score, never an
error.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from helpers.scores import GRADE_UNKNOWN, Classes, Component, DerivedParameter, Grade, register

BILIRUBIN_UMOL_PER_MG_DL = 17.1
CREATININE_UMOL_PER_MG_DL = 88.4
ALBUMIN_G_L_PER_G_DL = 10.0

ASCITES_POINTS = {"none": 1, "mild": 2, "moderate-severe": 3}
ENCEPHALOPATHY_POINTS = {"none": 1, "grade 1-2": 2, "grade 3-4": 3}

# Decimals kept when cleaning binary floating-point error before rounding
# (0.58 * 25 is 14.499999999999998, not 14.5); far below any laboratory precision.
_NOISE_DECIMALS = 9


# --------------------------------------------------------------------------
# Input/output plumbing
# --------------------------------------------------------------------------

def _common_index(args) -> pd.Index | None:
    """Index shared by the Series among ``args`` (None if there are none)."""
    indexes = [a.index for a in args if isinstance(a, pd.Series)]
    if not indexes:
        return None
    if any(not ix.equals(indexes[0]) for ix in indexes[1:]):
        raise ValueError("Series inputs must share the same index")
    return indexes[0]


def _to_float(value) -> np.ndarray:
    """Float array from a scalar/array/Series, with every missing marker as nan."""
    if isinstance(value, pd.Series):
        return value.to_numpy(dtype=float, na_value=np.nan)
    arr = np.asarray(value)
    if arr.dtype.kind in "biuf":
        return arr.astype(float)
    flat = [np.nan if pd.isna(v) else float(v) for v in arr.ravel()]
    return np.array(flat, dtype=float).reshape(arr.shape)


def _numeric_inputs(*args) -> tuple[list[np.ndarray], pd.Index | None, bool]:
    """Broadcast float arrays, the shared Series index, and whether all were scalars."""
    index = _common_index(args)
    scalar = index is None and all(np.ndim(a) == 0 for a in args)
    arrays = np.broadcast_arrays(*(_to_float(a) for a in args))
    return list(arrays), index, scalar


def _integer_output(values: np.ndarray, index: pd.Index | None, scalar: bool, name: str):
    """Return whole-number scores in the same kind as the inputs."""
    if index is not None:
        return pd.Series(values, index=index, name=name).astype("Int64")
    if scalar:
        v = float(values)
        return math.nan if math.isnan(v) else int(v)
    return values


def _round_half_up(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, ties upward (2.5 -> 3), unlike numpy's ties-to-even.

    Floating-point noise is removed first so that a true tie stored as
    x.4999999999999 still rounds up.
    """
    return np.floor(np.round(x, _NOISE_DECIMALS) + 0.5)


# --------------------------------------------------------------------------
# MELD / MELD-Na
# --------------------------------------------------------------------------

def _meld_i(bilirubin_umol, inr, creatinine_umol, dialysis) -> np.ndarray:
    """Unbounded MELD(i) = 10 x (OPTN linear predictor rounded half-up to 0.1)."""
    bili = np.maximum(bilirubin_umol / BILIRUBIN_UMOL_PER_MG_DL, 1.0)
    inr = np.maximum(inr, 1.0)
    cr = np.clip(creatinine_umol / CREATININE_UMOL_PER_MG_DL, 1.0, 4.0)
    cr = np.where(dialysis != 0, 4.0, cr)
    x = 0.957 * np.log(cr) + 0.378 * np.log(bili) + 1.120 * np.log(inr) + 0.643
    missing = np.isnan(dialysis) | np.isnan(creatinine_umol)
    return np.where(missing, np.nan, _round_half_up(10.0 * x))


def meld(bilirubin_umol, inr, creatinine_umol, dialysis=False):
    """Integer MELD (6..40), OPTN/UNOS definition in force before MELD 3.0.

    Why: the standard severity score for end-stage liver disease, needed on
    the trial's SI laboratory data.
    Source: OPTN Policy 9 (MELD score, 2016-2023 text); Kamath et al.,
    Hepatology 2001;33:464-70. Rule implemented, in order:

    1. bilirubin mg/dL = umol/L / 17.1; creatinine mg/dL = umol/L / 88.4;
    2. bilirubin, INR and creatinine below 1.0 are set to 1.0;
       creatinine above 4.0 mg/dL is set to 4.0, and to 4.0 when ``dialysis``
       is true (per row: OPTN's dialysis at least twice in the prior week or
       CVVHD; the caller decides);
    3. x = 0.957 ln(Cr) + 0.378 ln(bili) + 1.120 ln(INR) + 0.643;
    4. MELD(i) = x rounded to one decimal (the "tenth decimal place" of the
       policy means the tenths digit), ties half-up, then x 10 -> an integer;
    5. bounded to 6..40 (6 never binds: all labs >= 1 gives x >= 0.643).

    ``dialysis`` may be a bool or per-row booleans; missing gives a missing score.
    """
    (bili, inr_, cr, dial), index, scalar = _numeric_inputs(
        bilirubin_umol, inr, creatinine_umol, dialysis
    )
    score = np.clip(_meld_i(bili, inr_, cr, dial), 6.0, 40.0)
    return _integer_output(score, index, scalar, "meld")


def meld_na(bilirubin_umol, inr, creatinine_umol, sodium_mmol, dialysis=False):
    """Integer MELD-Na (6..40), the OPTN/UNOS allocation MELD of January 2016.

    Why: adds serum sodium, which independently predicts waiting-list death.
    Source: OPTN Policy 9 (MELD score, 2016-2023 text); Kim et al., N Engl J
    Med 2008;359:1018-26. Rule implemented, in order:

    1. MELD(i) as in :func:`meld` steps 1-4: the integer 10 x round_half_up(x, 1),
       *before* the 6..40 bound;
    2. sodium bounded to 125..137 mmol/L;
    3. if MELD(i) > 11 (strictly, on the rounded integer MELD(i)):
       MELD = MELD(i) + 1.32 (137 - Na) - 0.033 MELD(i) (137 - Na),
       otherwise MELD = MELD(i);
    4. rounded to the nearest integer, ties half-up;
    5. bounded to 6..40.

    Bounding MELD(i) before step 3 would give the same result: MELD(i) >= 6
    always, and for 0 <= 137 - Na <= 12 the step-3 value is increasing in
    MELD(i) and equals 40 at MELD(i) = 40, so any MELD(i) >= 40 ends at 40.
    """
    (bili, inr_, cr, na, dial), index, scalar = _numeric_inputs(
        bilirubin_umol, inr, creatinine_umol, sodium_mmol, dialysis
    )
    meld_i = _meld_i(bili, inr_, cr, dial)
    deficit = 137.0 - np.clip(na, 125.0, 137.0)
    adjusted = meld_i + 1.32 * deficit - 0.033 * meld_i * deficit
    score = np.where(meld_i > 11, _round_half_up(adjusted), meld_i)
    score = np.where(np.isnan(na), np.nan, np.clip(score, 6.0, 40.0))
    return _integer_output(score, index, scalar, "meld_na")


# --------------------------------------------------------------------------
# Child-Pugh
# --------------------------------------------------------------------------

def _rising_points(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """1 if x < low, 2 if low <= x <= high, 3 if x > high; nan stays nan."""
    points = np.where(x < low, 1.0, np.where(x <= high, 2.0, 3.0))
    return np.where(np.isnan(x), np.nan, points)


def _falling_points(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """1 if x > high, 2 if low <= x <= high, 3 if x < low; nan stays nan."""
    points = np.where(x > high, 1.0, np.where(x >= low, 2.0, 3.0))
    return np.where(np.isnan(x), np.nan, points)


def _category_points(values, mapping: dict[str, int], what: str) -> np.ndarray:
    """Points for category labels (case and surrounding blanks ignored); missing -> nan."""
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=object)
    arr = np.asarray(values, dtype=object)
    out = np.empty(arr.shape, dtype=float)
    for pos, label in np.ndenumerate(arr):
        if pd.isna(label):
            out[pos] = np.nan
            continue
        key = label.strip().lower() if isinstance(label, str) else None
        if key not in mapping:
            raise ValueError(
                f"unknown {what} category {label!r}; expected one of {sorted(mapping)}"
            )
        out[pos] = mapping[key]
    return out


def child_pugh_points(bilirubin_umol, albumin_g_l, inr, ascites, encephalopathy):
    """Child-Pugh score, 5..15 points (1-3 for each of five items).

    Why: standard grading of cirrhosis severity.
    Source: Pugh et al., Br J Surg 1973;60:646-9, with the cut-points in
    common clinical use (e.g. EASL clinical practice guidelines). Laboratory
    values are converted, then compared (no rounded SI thresholds):

    * bilirubin (umol/L / 17.1 = mg/dL): < 2 -> 1; 2 to 3 inclusive -> 2;
      > 3 -> 3. SI equivalents 34.2 and 51.3 umol/L, so 34.2 scores 2 and
      51.3 scores 2, 51.4 scores 3.
    * albumin (g/L / 10 = g/dL): > 3.5 -> 1; 2.8 to 3.5 inclusive -> 2;
      < 2.8 -> 3. So 35 g/L scores 2 and 28 g/L scores 2.
    * INR: < 1.7 -> 1; 1.7 to 2.3 inclusive -> 2; > 2.3 -> 3.
    * ascites: "none" 1, "mild" 2, "moderate-severe" 3.
    * encephalopathy: "none" 1, "grade 1-2" 2, "grade 3-4" 3.

    Category labels are matched ignoring case and surrounding blanks; any
    other non-missing label raises ValueError naming it.
    """
    index = _common_index((bilirubin_umol, albumin_g_l, inr, ascites, encephalopathy))
    (bili, alb, inr_), _, scalar = _numeric_inputs(bilirubin_umol, albumin_g_l, inr)
    scalar = scalar and np.ndim(ascites) == 0 and np.ndim(encephalopathy) == 0
    total = np.sum(
        np.broadcast_arrays(
            _rising_points(bili / BILIRUBIN_UMOL_PER_MG_DL, 2.0, 3.0),
            _falling_points(alb / ALBUMIN_G_L_PER_G_DL, 2.8, 3.5),
            _rising_points(inr_, 1.7, 2.3),
            _category_points(ascites, ASCITES_POINTS, "ascites"),
            _category_points(encephalopathy, ENCEPHALOPATHY_POINTS, "encephalopathy"),
        ),
        axis=0,
    )
    return _integer_output(total, index, scalar, "child_pugh_points")


def _class_of(points) -> str | pd.api.typing.NAType:
    """Class letter for one points value."""
    if pd.isna(points):
        return pd.NA
    is_number = isinstance(points, numbers.Real) and not isinstance(points, (bool, np.bool_))
    if not (is_number and float(points).is_integer() and 5 <= points <= 15):
        raise ValueError(f"Child-Pugh points must be a whole number 5..15, got {points!r}")
    return "A" if points <= 6 else "B" if points <= 9 else "C"


def child_pugh_class(points):
    """Child-Pugh class: "A" for 5-6 points, "B" for 7-9, "C" for 10-15.

    Why: the usual grouping of the points score (Pugh et al., Br J Surg 1973).
    Missing points give ``pd.NA``; anything that is not a whole number 5..15
    raises ValueError.
    """
    if isinstance(points, pd.Series):
        labels = [_class_of(p) for p in points.to_numpy(dtype=object)]
        return pd.Series(labels, index=points.index, name="child_pugh_class", dtype="string")
    if np.ndim(points) == 0:
        return _class_of(points.item() if isinstance(points, np.generic) else points)
    arr = np.asarray(points, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for pos, p in np.ndenumerate(arr):
        out[pos] = _class_of(p)
    return out


# --------------------------------------------------------------------------
# Registry entries
# --------------------------------------------------------------------------

_BILIRUBIN = Component("TBIL", "umol/L", (("mg/dL", BILIRUBIN_UMOL_PER_MG_DL),))
_CREATININE = Component("CREAT", "umol/L", (("mg/dL", CREATININE_UMOL_PER_MG_DL),))
_ALBUMIN = Component("ALB", "g/L", (("g/dL", ALBUMIN_G_L_PER_G_DL),))
_INR = Component("INR", "1")
_SODIUM = Component("SODIUM", "mmol/L")
# Dialysis (OPTN: at least twice in the prior week, or CVVHD) sets creatinine to 4 mg/dL; not recorded = none.
_DIALYSIS = Grade("dialysis", "dialysis", required=False)
ASCITES = Grade("ascites", "ascites grade", tuple(ASCITES_POINTS))
ENCEPHALOPATHY = Grade("encephalopathy", "encephalopathy grade", tuple(ENCEPHALOPATHY_POINTS))


def _on_dialysis(frame: pd.DataFrame) -> np.ndarray:
    return (frame["dialysis"] == "Y").to_numpy() if "dialysis" in frame else np.zeros(len(frame), dtype=bool)


register(DerivedParameter(
    "MELD", "MELD score", "points", (_BILIRUBIN, _INR, _CREATININE),
    lambda f: meld(f["TBIL"], f["INR"], f["CREAT"], dialysis=_on_dialysis(f)), grades=(_DIALYSIS,),
    reference="OPTN Policy 9 (MELD, 2016-2023); Kamath et al., Hepatology 2001;33:464-70"))
register(DerivedParameter(
    "MELDNA", "MELD-Na score", "points", (_BILIRUBIN, _INR, _CREATININE, _SODIUM),
    lambda f: meld_na(f["TBIL"], f["INR"], f["CREAT"], f["SODIUM"], dialysis=_on_dialysis(f)), grades=(_DIALYSIS,),
    reference="OPTN Policy 9 (MELD, 2016-2023); Kim et al., N Engl J Med 2008;359:1018-26"))
register(DerivedParameter(
    "CPSCORE", "Child-Pugh score", "points", (_BILIRUBIN, _ALBUMIN, _INR),
    lambda f: child_pugh_points(f["TBIL"], f["ALB"], f["INR"], f["ascites"], f["encephalopathy"]),
    grades=(ASCITES, ENCEPHALOPATHY),
    classes=Classes("CPCLASS", "Child-Pugh class", ("A", "B", "C"),
                    lambda points: child_pugh_class(points.astype("Float64")),
                    "Class A: 5-6 points, B: 7-9, C: 10-15 (Pugh et al., 1973)."),
    reference="Pugh et al., Br J Surg 1973;60:646-9"))
