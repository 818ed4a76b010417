"""Blinded data review: arms masked consistently in the trial, the export, the allocation list and any text."""
from __future__ import annotations

from helpers.analysis import allocation
from helpers.data import randomization
from helpers.data.blinding import arm_mentions, mask_export, mask_text
from helpers.data.loading import load_export


def test_masking_is_a_shuffled_one_to_one_map_to_letters(trial):
    codes = trial.masking()
    assert sorted(codes) == sorted(trial.arm_codes) and sorted(codes.values()) == ["A", "B"]
    assert trial.masking() == codes
    assert {tuple(trial.masking(str(k)).items()) for k in range(20)} == {(("PV", "A"), ("HA", "B")),
                                                                        (("PV", "B"), ("HA", "A"))}


def test_the_blinded_trial_names_no_arm_and_takes_arm_a_as_reference(trial):
    b = trial.blinded("key")
    assert [a.label for a in b.arms] == ["Arm A", "Arm B"] and b.control_arm == "A"
    assert b.is_blinded and b.masked_from is trial and not trial.is_blinded
    for a in trial.arms:
        for text in (b.title, b.short_title, b.background, *(x.description for x in b.arms)):
            assert a.label.lower() not in text.lower()


def test_the_masked_export_matches_the_masked_allocation_list(trial, clean_dir):
    b = trial.blinded("key")
    real = load_export(clean_dir, trial)
    masked = mask_export(real, b)
    assert masked["randomization"]["arm"].tolist() == real["randomization"]["arm"].map(b.masking_codes).tolist()
    assert set(masked["infusion"]["arm_received"].dropna()) <= {"A", "B"}
    alloc = randomization.allocation_list(b)
    assert alloc["arm"].tolist() == randomization.allocation_list(trial)["arm"].map(b.masking_codes).tolist()
    check = allocation.check_allocation(masked, b, alloc)
    assert check.realized["arm_matches"].all() and check.realized["block_matches"].all()


def test_mask_text_and_arm_mentions_find_every_spelling(trial, tmp_path):
    b = trial.blinded("key")
    text = "HEPATIC ARTERY beat peripheral vein; hUC-MSC infused through the hepatic artery"
    masked = mask_text(text, b)
    assert "artery" not in masked.lower() and "vein" not in masked.lower()
    assert masked.startswith(f"Arm {b.masking_codes['HA']} beat Arm {b.masking_codes['PV']}")
    (tmp_path / "ok.md").write_text(masked)
    (tmp_path / "leak.csv").write_text("TRT01P\nPeripheral Vein\n")
    assert arm_mentions(tmp_path, trial) == [(tmp_path / "leak.csv", "Peripheral Vein")]
