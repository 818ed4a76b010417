"""Tests for helpers.scores.liver: expected values are computed by hand, not by the code under test."""
import math

import numpy as np
import pandas as pd
import pytest

from helpers.scores.liver import (
    _round_half_up,
    child_pugh_class,
    child_pugh_points,
    meld,
    meld_na,
)

# SI values that convert to round mg/dL numbers:
# bilirubin 17.1 umol/L = 1.0 mg/dL, 34.2 = 2.0, 51.3 = 3.0, 171 = 10, 1710 = 100
# creatinine 88.4 umol/L = 1.0 mg/dL, 132.6 = 1.5, 176.8 = 2.0, 353.6 = 4.0


# ---------------------------------------------------------------- MELD worked examples

def test_worked_example_typical_patient():
    # bili 51.3/17.1 = 3.0 mg/dL, INR 1.5, Cr 176.8/88.4 = 2.0 mg/dL
    # 0.957 ln2   = 0.957 * 0.693147 = 0.663342
    # 0.378 ln3   = 0.378 * 1.098612 = 0.415275
    # 1.120 ln1.5 = 1.120 * 0.405465 = 0.454121
    # x = 0.663342 + 0.415275 + 0.454121 + 0.643 = 2.175738 -> 2.2 -> MELD 22
    assert meld(51.3, 1.5, 176.8) == 22
    # MELD-Na, Na 130: 22 + 1.32*7 - 0.033*22*7 = 22 + 9.24 - 5.082 = 26.158 -> 26
    assert meld_na(51.3, 1.5, 176.8, 130) == 26


def test_worked_example_tenth_rounds_up():
    # bili 34.2 -> 2.0 mg/dL, INR 1.2, Cr 132.6 -> 1.5 mg/dL
    # 0.957 ln1.5 = 0.388030; 0.378 ln2 = 0.262010; 1.120 ln1.2 = 1.120 * 0.182322 = 0.204200
    # x = 0.388030 + 0.262010 + 0.204200 + 0.643 = 1.497240 -> 1.5 -> 15 (truncation would give 14)
    assert meld(34.2, 1.2, 132.6) == 15


def test_worked_example_meld_na_uses_rounded_meld_i():
    # bili 20.6/17.1 = 1.204678 mg/dL, INR 1.0, Cr 353.6 -> 4.0 mg/dL
    # 0.957 ln4 = 0.957 * 1.386294 = 1.326684; 0.378 ln1.204678 = 0.378 * 0.186213 = 0.070388
    # x = 1.326684 + 0.070388 + 0 + 0.643 = 2.040072 -> 2.0 -> MELD(i) 20
    assert meld(20.6, 1.0, 353.6) == 20
    # Na 135: 20 + 1.32*2 - 0.033*20*2 = 20 + 2.64 - 1.32 = 21.32 -> 21
    # (with the unrounded 20.40072: 20.40072 + 2.64 - 1.34645 = 21.694 -> 22, which is wrong)
    assert meld_na(20.6, 1.0, 353.6, 135) == 21


# ---------------------------------------------------------------- MELD rules

def test_all_normal_labs_give_minimum_six():
    # all 1.0: x = 0.643 -> 0.6 -> 6
    assert meld(17.1, 1.0, 88.4) == 6


@pytest.mark.parametrize(
    "bili, inr, cr, expected",
    [
        # Cr 50/88.4 = 0.566 -> 1.0; bili 10 mg/dL, INR 2:
        # 0.378 ln10 = 0.870377, 1.120 ln2 = 0.776325; x = 2.289702 -> 23 (unfloored: 1.744 -> 17)
        (171.0, 2.0, 50.0, 23),
        # INR 0.8 -> 1.0; bili 10, Cr 2: x = 0.870377 + 0.663342 + 0.643 = 2.176719 -> 22 (unfloored: 19)
        (171.0, 0.8, 176.8, 22),
        # bili 10/17.1 = 0.585 -> 1.0; INR 2, Cr 2: x = 0.776325 + 0.663342 + 0.643 = 2.082667 -> 21 (unfloored: 19)
        (10.0, 2.0, 176.8, 21),
    ],
)
def test_values_below_one_are_set_to_one(bili, inr, cr, expected):
    assert meld(bili, inr, cr) == expected


@pytest.mark.parametrize(
    "cr, dialysis, expected",
    [
        (88.4, False, 6),    # Cr 1.0: x = 0.643 -> 6
        (353.6, False, 20),  # Cr 4.0: x = 1.326684 + 0.643 = 1.969684 -> 20
        (500.0, False, 20),  # Cr 5.66 capped to 4.0 -> 20 (uncapped: 0.957 ln5.656 = 1.658 -> 23)
        (88.4, True, 20),    # dialysis sets Cr to 4.0 -> 20
    ],
)
def test_creatinine_cap_and_dialysis(cr, dialysis, expected):
    assert meld(17.1, 1.0, cr, dialysis=dialysis) == expected


def test_dialysis_is_per_row():
    result = meld(np.array([17.1, 17.1]), 1.0, np.array([88.4, 88.4]), dialysis=np.array([True, False]))
    np.testing.assert_array_equal(result, [20.0, 6.0])


def test_upper_bound_40():
    # bili 100 mg/dL, INR 5, Cr 4: 0.378*4.605170 + 1.120*1.609438 + 1.326684 + 0.643
    # = 1.740754 + 1.802571 + 1.326684 + 0.643 = 5.513009 (5.513008 unrounded terms) -> 55 -> bounded 40
    assert meld(1710.0, 5.0, 353.6) == 40
    # bili 50 mg/dL, INR 1.5, Cr 4: 0.378*3.912023 + 0.454121 + 1.326684 + 0.643
    # = 1.478745 + 0.454121 + 1.326684 + 0.643 = 3.902550 (3.902549 unrounded terms) -> 39 (stays below the bound)
    assert meld(855.0, 1.5, 353.6) == 39


def test_round_half_up_not_bankers():
    np.testing.assert_array_equal(_round_half_up(np.array([0.5, 2.5, 12.5, 12.49])), [1.0, 3.0, 13.0, 12.0])
    # 0.58 * 25 is stored as 14.499999999999998; the true value 14.5 rounds up
    assert _round_half_up(np.array(0.58 * 25)) == 15.0


# ---------------------------------------------------------------- MELD-Na rules

# bili 74.6/17.1 = 4.362573 mg/dL, INR 1, Cr 1: x = 0.378 * 1.473062 + 0.643 = 1.199817 -> MELD(i) 12
# bili 63.7/17.1 = 3.725146 mg/dL, INR 1, Cr 1: x = 0.378 * 1.315106 + 0.643 = 1.140110 -> MELD(i) 11

@pytest.mark.parametrize(
    "sodium, expected",
    [
        (125, 23),    # 12 + 1.32*12 - 0.033*12*12 = 12 + 15.84 - 4.752 = 23.088 -> 23
        (120, 23),    # bounded up to 125 -> 23 (unbounded: 12 + 22.44 - 6.732 = 27.7 -> 28)
        (136, 13),    # 12 + 1.32 - 0.396 = 12.924 -> 13
        (137, 12),    # no deficit -> 12
        (145, 12),    # bounded down to 137 -> 12 (unbounded: 12 - 10.56 + 3.168 = 4.6)
    ],
)
def test_meld_na_sodium_bounds(sodium, expected):
    assert meld(74.6, 1.0, 88.4) == 12
    assert meld_na(74.6, 1.0, 88.4, sodium) == expected


def test_meld_na_applies_only_when_meld_i_above_11():
    # MELD(i) 11 (10x = 11.40): no sodium term even at Na 125
    # (if the unrounded 11.40 were tested against 11: 11.40 + 15.84 - 4.51 = 22.7 -> 23)
    assert meld(63.7, 1.0, 88.4) == 11
    assert meld_na(63.7, 1.0, 88.4, 125) == 11
    assert meld_na(74.6, 1.0, 88.4, 125) == 23


def test_meld_na_upper_bound_40():
    # MELD(i) 55 (see test_upper_bound_40), Na 125: 55 + 15.84 - 0.033*55*12 = 55 + 15.84 - 21.78 = 49.06 -> 40
    assert meld_na(1710.0, 5.0, 353.6, 125) == 40


# ---------------------------------------------------------------- vectorisation and missing values

def test_series_keep_index_and_missing_values():
    index = pd.Index([30, 10, 20], name="subject")
    bili = pd.Series([51.3, None, 20.6], index=index)
    sodium = pd.Series([130.0, 130.0, np.nan], index=index)
    result = meld_na(bili, 1.5, pd.Series([176.8, 176.8, 176.8], index=index), sodium)
    assert result.index.equals(index)
    assert str(result.dtype) == "Int64"
    assert result.loc[30] == 26  # worked example 1
    assert result.loc[10] is pd.NA
    assert result.loc[20] is pd.NA

    plain = meld(bili, 1.5, 176.8)
    # row 20: bili 1.204678 mg/dL, INR 1.5, Cr 2: 0.070388 + 0.454121 + 0.663342 + 0.643 = 1.830851 -> 18
    assert plain.tolist() == [22, pd.NA, 18]


def test_missing_dialysis_in_series_gives_missing():
    dialysis = pd.Series([True, pd.NA, False], dtype="boolean")
    result = meld(pd.Series([17.1, 17.1, 17.1]), 1.0, 88.4, dialysis=dialysis)
    assert result.tolist() == [20, pd.NA, 6]


def test_missing_creatinine_gives_missing_even_on_dialysis():
    assert math.isnan(meld(17.1, 1.0, None, dialysis=True))


def test_scalars_give_int_or_nan():
    value = meld(51.3, 1.5, 176.8)
    assert type(value) is int
    assert math.isnan(meld(None, 1.5, 176.8))
    assert math.isnan(meld_na(51.3, pd.NA, 176.8, 130))
    assert math.isnan(meld_na(51.3, 1.5, 176.8, None))
    assert math.isnan(meld_na(17.1, 1.0, 88.4, None))  # MELD(i) 6 would not use sodium, still missing


def test_arrays_give_float_arrays_with_nan():
    result = meld(np.array([51.3, np.nan]), np.array([1.5, 1.5]), 176.8)
    assert isinstance(result, np.ndarray)
    np.testing.assert_array_equal(result, [22.0, np.nan])
    mixed = meld(np.array([51.3, None], dtype=object), 1.5, np.array([176.8, 176.8]))
    np.testing.assert_array_equal(mixed, [22.0, np.nan])


def test_series_with_different_indexes_are_rejected():
    with pytest.raises(ValueError, match="same index"):
        meld(pd.Series([17.1], index=[1]), pd.Series([1.0], index=[2]), 88.4)


# ---------------------------------------------------------------- Child-Pugh

BASE = dict(bilirubin_umol=17.1, albumin_g_l=40.0, inr=1.0, ascites="none", encephalopathy="none")


def _points(**change):
    return child_pugh_points(**{**BASE, **change})


def test_baseline_is_five():
    assert _points() == 5


@pytest.mark.parametrize(
    "bili_umol, expected",
    [
        (34.1, 5),  # 1.994 mg/dL < 2 -> 1 point
        (34.2, 6),  # 2.0 mg/dL -> 2 points
        (34.3, 6),  # 2.006 -> 2
        (51.3, 6),  # 3.0 -> 2 (3 is inside 2-3)
        (51.4, 7),  # 3.006 > 3 -> 3
    ],
)
def test_bilirubin_cut_points(bili_umol, expected):
    assert _points(bilirubin_umol=bili_umol) == expected


@pytest.mark.parametrize(
    "albumin_g_l, expected",
    [
        (35.1, 5),  # 3.51 g/dL > 3.5 -> 1
        (35.0, 6),  # 3.5 -> 2
        (28.0, 6),  # 2.8 -> 2
        (27.9, 7),  # 2.79 < 2.8 -> 3
    ],
)
def test_albumin_cut_points(albumin_g_l, expected):
    assert _points(albumin_g_l=albumin_g_l) == expected


@pytest.mark.parametrize("inr, expected", [(1.69, 5), (1.7, 6), (2.3, 6), (2.31, 7)])
def test_inr_cut_points(inr, expected):
    assert _points(inr=inr) == expected


@pytest.mark.parametrize("label, extra", [("none", 0), ("mild", 1), ("moderate-severe", 2)])
def test_ascites_categories(label, extra):
    assert _points(ascites=label) == 5 + extra


@pytest.mark.parametrize("label, extra", [("none", 0), ("grade 1-2", 1), ("grade 3-4", 2)])
def test_encephalopathy_categories(label, extra):
    assert _points(encephalopathy=label) == 5 + extra


def test_labels_ignore_case_and_blanks():
    assert _points(ascites=" Mild ", encephalopathy="GRADE 3-4") == 8


@pytest.mark.parametrize(
    "change, bad",
    [
        (dict(ascites="severe"), "severe"),
        (dict(encephalopathy="grade 2"), "grade 2"),
        (dict(ascites=2), "2"),
    ],
)
def test_unknown_category_raises_naming_value(change, bad):
    with pytest.raises(ValueError, match=bad):
        _points(**change)


def test_child_pugh_worked_examples():
    # bili 34.2 -> 2.0 mg/dL (2) + albumin 30 -> 3.0 g/dL (2) + INR 1.5 (1) + mild (2) + none (1) = 8 -> B
    assert child_pugh_points(34.2, 30.0, 1.5, "mild", "none") == 8
    assert child_pugh_class(8) == "B"
    # bili 60 -> 3.51 (3) + albumin 25 -> 2.5 (3) + INR 2.5 (3) + 3 + 3 = 15 -> C
    assert child_pugh_points(60.0, 25.0, 2.5, "moderate-severe", "grade 3-4") == 15
    assert child_pugh_class(15) == "C"


def test_child_pugh_series_with_missing_values():
    index = pd.Index(["p3", "p1", "p2"])
    points = child_pugh_points(
        pd.Series([34.2, 17.1, np.nan], index=index),
        30.0,
        1.5,
        pd.Series(["mild", None, "none"], index=index),
        "none",
    )
    assert points.index.equals(index)
    assert points.tolist() == [8, pd.NA, pd.NA]
    classes = child_pugh_class(points)
    assert classes.index.equals(index)
    assert classes.tolist() == ["B", pd.NA, pd.NA]


def test_child_pugh_arrays():
    result = child_pugh_points(np.array([17.1, 60.0]), 40.0, 1.0, np.array(["none", "mild"]), "none")
    np.testing.assert_array_equal(result, [5.0, 8.0])  # second: bili 3.51 mg/dL (3) + mild (2) + 1 + 1 + 1


@pytest.mark.parametrize("points, expected", [(5, "A"), (6, "A"), (7, "B"), (9, "B"), (10, "C"), (15, "C")])
def test_class_boundaries(points, expected):
    assert child_pugh_class(points) == expected


@pytest.mark.parametrize("points", [4, 16, 6.5, "7", True])
def test_class_rejects_impossible_points(points):
    with pytest.raises(ValueError, match="5..15"):
        child_pugh_class(points)


def test_class_of_missing_and_arrays():
    assert child_pugh_class(None) is pd.NA
    result = child_pugh_class(np.array([6.0, 7.0, np.nan]))
    assert result[:2].tolist() == ["A", "B"]
    assert result[2] is pd.NA


# ---------------------------------------------------------------- eGFR (CKD-EPI 2021), the kidney plug-in

def test_egfr_by_hand():
    """CKD-EPI 2021: 142 x min(Scr/k,1)^a x max(Scr/k,1)^-1.200 x 0.9938^age x 1.012 [female]
    (Inker et al., NEJM 2021; k 0.7 F / 0.9 M, a -0.241 F / -0.302 M; Scr in mg/dL). By hand:

    * man, 40 y, Scr 0.9: Scr/k = 1, both spline terms 1; 0.9938^40 = exp(40 ln 0.9938) = exp(-0.248772)
      = 0.779758; 142 x 0.779758 = 110.726.
    * man, 50 y, Scr 1.0: max term (1/0.9)^-1.2 = exp(-1.2 x 0.105361) = 0.881234; 0.9938^50 = 0.732740;
      142 x 0.881234 x 0.732740 = 91.691 (92 as calculators round it).
    * woman, 60 y, Scr 0.6: min term (0.6/0.7)^-0.241 = exp(0.241 x 0.154151) = 1.037849; 0.9938^60 = 0.688556;
      142 x 1.037849 x 0.688556 x 1.012 = 102.693.
    * woman, 70 y, Scr 2.0: max term (2/0.7)^-1.2 = exp(-1.2 x 1.049822) = 0.283715; 0.9938^70 = 0.647038;
      142 x 0.283715 x 0.647038 x 1.012 = 26.380.
    """
    from helpers.scores.kidney import egfr_ckd_epi_2021
    assert egfr_ckd_epi_2021(0.9, 40, False) == pytest.approx(110.726, abs=0.001)
    assert egfr_ckd_epi_2021(1.0, 50, False) == pytest.approx(91.691, abs=0.001)
    assert egfr_ckd_epi_2021(0.6, 60, True) == pytest.approx(102.693, abs=0.001)
    assert egfr_ckd_epi_2021(2.0, 70, True) == pytest.approx(26.380, abs=0.001)
    both = egfr_ckd_epi_2021(np.array([1.0, np.nan]), np.array([50, 50]), np.array([False, False]))
    assert both[0] == pytest.approx(91.691, abs=0.001) and np.isnan(both[1])


def test_gfr_categories_at_their_bounds():
    from helpers.scores.kidney import gfr_category
    got = gfr_category(pd.Series([90.0, 89.99, 60.0, 45.0, 44.9, 30.0, 15.0, 14.99, np.nan]))
    assert got.tolist() == ["G1", "G2", "G2", "G3a", "G3b", "G3b", "G4", "G5", pd.NA]


# ---------------------------------------------------------------- the registry

def test_registry_states_components_units_and_classes():
    from helpers import scores
    assert {"MELD", "MELDNA", "CPSCORE", "EGFR"} <= set(scores.REGISTRY)
    egfr = scores.get("EGFR")
    assert [(c.code, c.unit) for c in egfr.components] == [("CREAT", "mg/dL")] and egfr.participant == ("AGE", "SEX")
    cp = scores.get("CPSCORE")
    assert [g.column for g in cp.required_grades] == ["ascites", "encephalopathy"]
    assert cp.classes.code == "CPCLASS" and cp.classes.levels == ("A", "B", "C")
    assert [g.column for g in scores.get("MELD").required_grades] == []  # no dialysis record: not on dialysis
    with pytest.raises(KeyError, match="no derived parameter 'NOPE'; registered: CPSCORE, EGFR"):
        scores.get("NOPE")


def test_registry_converts_the_panel_unit_to_the_unit_a_component_needs():
    from helpers import scores
    from helpers.trial import LabTest
    creat_si = LabTest("CREAT", "Creatinine", "umol/L", (("mg/dL", 88.4),))
    creat_us = LabTest("CREAT", "Creatinine", "mg/dL")
    egfr, meld_ = scores.get("EGFR").components[0], scores.get("MELD").components[2]
    assert scores.conversion(egfr, creat_si) == pytest.approx(1 / 88.4)
    assert scores.conversion(egfr, creat_us) == 1.0
    assert scores.conversion(meld_, creat_us) == 88.4  # the component states mg/dL -> umol/L itself
    assert scores.conversion(egfr, LabTest("CREAT", "Creatinine", "mmol/L")) is None


def test_derive_computes_complete_rows_only_and_grade_unknown_is_not_derivable():
    from helpers import scores
    frame = pd.DataFrame({"TBIL": [34.2, 34.2, np.nan, 34.2], "ALB": [30.0] * 4, "INR": [1.5] * 4,
                          "ascites": ["mild", scores.GRADE_UNKNOWN, "mild", None],
                          "encephalopathy": ["none"] * 4})
    got = scores.derive(scores.get("CPSCORE"), frame)
    assert got.iloc[0] == 8 and got.iloc[1:].isna().all()  # 2 + 2 + 1 + 2 + 1 (test_child_pugh_worked_examples)
    people = pd.DataFrame({"CREAT": [1.0, 1.0, 0.9], "AGE": [50, np.nan, 40], "SEX": ["M", "M", "M"]})
    got = scores.derive(scores.get("EGFR"), people)
    assert got.iloc[0] == pytest.approx(91.691, abs=0.001) and np.isnan(got.iloc[1])
    assert got.iloc[2] == pytest.approx(110.726, abs=0.001)
    with pytest.raises(ValueError, match="SEX coded F or M"):
        scores.derive(scores.get("EGFR"), people.assign(SEX="U"))
