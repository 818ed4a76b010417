"""The kidney-disease plug-in of the derived-parameter registry: eGFR by the CKD-EPI 2021 creatinine equation.

A trial names it by code (EGFR; its KDIGO category GFRCAT). It needs serum creatinine (converted to mg/dL:
umol/L / 88.4) and the participant's age and sex (ADSL AGE, SEX with CDISC codes F/M).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.scores import Classes, Component, DerivedParameter, register

CREATININE_UMOL_PER_MG_DL = 88.4
# KDIGO GFR categories (mL/min/1.73 m2): the lower bound of each, best first; G5 is below 15.
GFR_CATEGORIES = (("G1", 90.0), ("G2", 60.0), ("G3a", 45.0), ("G3b", 30.0), ("G4", 15.0), ("G5", -np.inf))


def egfr_ckd_epi_2021(creatinine_mg_dl, age, female):
    """eGFR (mL/min/1.73 m2), CKD-EPI 2021 creatinine equation, without race.

    Source: Inker et al., N Engl J Med 2021;385:1737-49 (as published by the NKF):
    eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [if female],
    k = 0.7 (female) or 0.9 (male), a = -0.241 (female) or -0.302 (male), Scr in mg/dL, age in years.
    Unrounded (a report rounds it); arrays and Series broadcast; a missing input gives nan.
    """
    scr = np.asarray(creatinine_mg_dl, dtype=float)
    age_ = np.asarray(age, dtype=float)
    fem = np.asarray(female, dtype=bool)
    kappa = np.where(fem, 0.7, 0.9)
    alpha = np.where(fem, -0.241, -0.302)
    ratio = scr / kappa
    value = (142.0 * np.minimum(ratio, 1.0) ** alpha * np.maximum(ratio, 1.0) ** -1.200 * 0.9938 ** age_
             * np.where(fem, 1.012, 1.0))
    return float(value) if np.ndim(value) == 0 else value


def gfr_category(egfr: pd.Series) -> pd.Series:
    """KDIGO GFR category (G1 >= 90, G2 60-89, G3a 45-59, G3b 30-44, G4 15-29, G5 < 15); missing stays missing.

    Source: KDIGO 2012 (and 2024) CKD guideline, GFR categories."""
    x = egfr.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    labels = np.select([x >= low for _, low in GFR_CATEGORIES], [c for c, _ in GFR_CATEGORIES], "")
    return pd.Series(np.where(np.isnan(x), None, labels), index=egfr.index, dtype="string")


def _from_frame(f: pd.DataFrame) -> np.ndarray:
    sex = f["SEX"].astype(str).str.upper()
    unknown = ~sex.isin(["F", "M"])
    if unknown.any():
        raise ValueError(f"eGFR needs SEX coded F or M (CDISC); found {sorted(set(f['SEX'][unknown]))}")
    return egfr_ckd_epi_2021(f["CREAT"].to_numpy(dtype=float), f["AGE"].to_numpy(dtype=float), (sex == "F").to_numpy())


register(DerivedParameter(
    "EGFR", "eGFR (CKD-EPI 2021)", "mL/min/1.73 m2",
    (Component("CREAT", "mg/dL", (("umol/L", 1.0 / CREATININE_UMOL_PER_MG_DL),)),),
    _from_frame, participant=("AGE", "SEX"),
    classes=Classes("GFRCAT", "GFR category (KDIGO)", tuple(c for c, _ in GFR_CATEGORIES), gfr_category,
                    "G1: 90 or more, G2: 60-89, G3a: 45-59, G3b: 30-44, G4: 15-29, G5: below 15 mL/min/1.73 m2 (KDIGO)."),
    reference="Inker et al., N Engl J Med 2021;385:1737-49"))
