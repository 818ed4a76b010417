"""Blinded data review: arms masked consistently in the trial, the export, the allocation list and any text."""
from __future__ import annotations

import pytest

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
    assert set(masked["dosing"]["arm_received"].dropna()) <= {"A", "B"}
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


def test_the_trial_files_design_text_passes_a_label_with_a_number_fails(tmp_path):
    """DEMO-ORAL's design says "placebo-controlled" and its control arm is labelled Placebo: the design text is
    the same for both arms and public, so it passes; a results row naming Placebo is refused."""
    from helpers.pipeline import BuildError, check_blinding, trial_markdown
    from helpers.trial import load_trial

    real = load_trial("DEMO-ORAL")
    b = real.blinded("key")
    assert "placebo-controlled" in real.design
    page = trial_markdown(b)
    assert "Placebo-controlled" in page or "placebo-controlled" in page
    (tmp_path / "trial.md").write_text(page)
    (tmp_path / "summary.ipynb").write_text('{"text": "%s trial in %s"}' % (real.design.capitalize(), real.population))
    (tmp_path / "searchindex.js").write_text('Search.setIndex({"terms":{"placebo":[0,1],"arm":[2]}})')
    check_blinding(tmp_path, b)
    assert arm_mentions(tmp_path, real) == []
    (tmp_path / "table.html").write_text("<tr><td>Placebo</td><td>12 (60.0%)</td></tr>")
    (tmp_path / "figure.svg").write_text("<text>placebo-treated: 14 deaths</text>")
    with pytest.raises(BuildError, match=r"2 file\(s\) name an arm"):
        check_blinding(tmp_path, b)


def test_the_search_index_allows_only_the_public_words(tmp_path):
    """In the search index a word of the design text is allowed; an arm name that is not one of its words is not."""
    from helpers.trial import load_trial

    real = load_trial("DEMO-ORAL")
    (tmp_path / "searchindex.js").write_text('Search.setIndex({"titles":["Oral drug arm"],"terms":{"placebo":[0]}})')
    assert arm_mentions(tmp_path, real) == [(tmp_path / "searchindex.js", "Oral drug")]


def test_masking_leaves_the_public_design_text_alone():
    """Masking "placebo" inside "placebo-controlled" would say which letter is the placebo arm."""
    from helpers.trial import load_trial

    real = load_trial("DEMO-ORAL")
    b = real.blinded("key")
    masked = mask_text(f"Design: {real.design}. Placebo: 12 deaths; oral drug: 9.", b)
    assert real.design in masked
    assert masked.endswith(f"Arm {b.masking_codes['PBO']}: 12 deaths; Arm {b.masking_codes['DRUG']}: 9.")


def test_the_blinded_title_names_the_trial_once():
    from helpers.pipeline import trial_markdown
    from helpers.trial import load_trial

    b = load_trial("DEMO-ORAL").blinded("key")
    assert "**DEMO-ORAL**: Blinded data review." in trial_markdown(b)
    assert trial_markdown(b).count("DEMO-ORAL") == 1


def test_blinding_is_in_every_notebooks_freshness_key():
    """An unblinded build's notebook outputs are never reused by a blinded one, nor the reverse."""
    from helpers import freshness, paths

    base = {"data": "synthetic", "seed": None, "cutoff": None}
    keys = [freshness.common_key("synthetic", paths.trial_file("DEMO-ORAL"), base | {"blinded": b}) for b in (False, True)]
    assert keys[0] != keys[1]


def test_each_blinding_state_has_its_own_jupyter_book_work_folder(tmp_path):
    from helpers import pipeline

    assert pipeline.book_work_dir(tmp_path / "_build", True) != pipeline.book_work_dir(tmp_path / "_build", False)
    assert pipeline.book_work_dir(tmp_path / "_build", True).parent == pipeline.trees_dir(tmp_path / "_build")


def test_an_arm_name_inside_another_word_is_no_mention(tmp_path):
    from helpers.trial import load_trial

    real = load_trial("DEMO-ORAL")
    (tmp_path / "clipboard.min.js").write_text("var placeboish=1;")
    assert arm_mentions(tmp_path, real) == []
