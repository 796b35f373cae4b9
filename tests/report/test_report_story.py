"""The report says what happened: counts on their own axis, constant values in one line,
and the subject taken from the files."""

from __future__ import annotations

import json
from pathlib import Path

from e2e_recon.report.contents import data_statement
from e2e_recon.report.figures import constant_values_text, group_stat_keys
from e2e_recon.report.pictures import training_section
from e2e_recon.report.subject import subject_of_file, subject_statement


def _stats_rows(n: int = 40) -> list[dict[str, object]]:
    """A run without the adversarial term: ratio and learning rates never change."""
    rows: list[dict[str, object]] = []
    for i in range(n):
        row: dict[str, object] = {
            "iteration": 100 * i, "loss_g": 10.0 / (i + 1), "image": 5.0 / (i + 1),
            "ratio": 1.0, "lr_g": 2e-4, "lr_d": 2e-4,
        }  # fmt: skip
        if i % 10 == 9:
            row |= {
                "val_pixel_identification": 0.5 + i / 100, "val_pixcorr": i / 100,
                "val_best": 0.5 + i / 100, "val_best_iteration": 100 * i,
            }  # fmt: skip
        rows.append(row)
    return rows


def test_validation_counts_get_their_own_panel() -> None:
    """val_best_iteration (0 to thousands) is not drawn on the axis of values in 0-1."""
    keys = ["loss_g", "val_pixel_identification", "val_pixcorr", "val_best", "val_best_iteration"]
    groups = {g.title: g.keys for g in group_stat_keys(keys)}
    assert groups["Validation metrics"] == ["val_pixel_identification", "val_pixcorr", "val_best"]
    assert groups["Validation: iterations and counts"] == ["val_best_iteration"]


def test_values_that_never_change_fold_into_one_line(tmp_path: Path) -> None:
    rows = _stats_rows()
    text = constant_values_text(rows)
    assert text == (
        "Constant throughout the run, so not plotted: ratio = 1, lr_g = 0.0002, lr_d = 0.0002."
    )
    (tmp_path / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = training_section(tmp_path)
    assert text in page and 'alt="training curves"' in page
    assert constant_values_text([{"iteration": 0, "loss_g": 1.0}, {"loss_g": 2.0}]) is None


def test_subject_is_taken_from_the_files() -> None:
    """The training file names no subject, the test file names sub-04, the config holds its
    default sub-01: the report names sub-04 and says where it came from and that the config
    differs."""
    data = {
        "subject": "sub-01",
        "train_fmri": "data/mine_training.h5",
        "test_fmri": ["data/sub-04_perceptionNaturalImageTest_original_VC.h5"],
    }
    statement = subject_statement(data)
    assert statement.subject == "sub-04"
    assert statement.source.startswith("the test file names; the training file's name")
    assert statement.note is not None and "data.subject is sub-01" in statement.note
    assert subject_of_file("sub-4_x.h5") == "sub-04" and subject_of_file("subject.h5") is None
    # One reading with training's: a label training accepts is stated as written.
    assert subject_of_file("sub-ctrl7_x.h5") == "sub-ctrl7"


def test_training_and_test_files_that_disagree_are_said_so(tmp_path: Path) -> None:
    data = {
        "subject": "sub-02",
        "train_fmri": "sub-02_perceptionNaturalImageTraining_original_VC.h5",
        "test_fmri": ["sub-04_perceptionNaturalImageTest_original_VC.h5"],
    }
    facts = dict(data_statement(tmp_path, {"data": data}).facts)
    assert facts["Subject"].startswith("sub-02, sub-04 (from the training and test file names)")
    assert "Note: the training file names sub-02 and the test files sub-04" in facts["Subject"]
    same = subject_statement({**data, "test_fmri": [data["train_fmri"].replace("Train", "Te")]})
    assert same.text == "sub-02 (from the training and test file names)"
    none = subject_statement({"subject": "sub-03", "train_fmri": "a.h5", "test_fmri": ["b.h5"]})
    assert none.text == "sub-03 (from config.yaml data.subject; no file name carries a subject)"


def test_a_shared_run_names_its_subjects_without_a_disagreement_note() -> None:
    """A shared run trains on several subjects' files and tests each of them."""
    files = [f"/d/sub-0{k}_perceptionNaturalImageTraining_original_VC.h5" for k in (1, 2, 3)]
    tests = [f.replace("Training", "Test") for f in files[:2]]
    data = {"subject": "sub-01", "train_fmri": "", "train_fmri_subjects": files, "test_fmri": tests}
    statement = subject_statement(data)
    assert statement.subject == "sub-01, sub-02, sub-03" and statement.note is None
    stranger = subject_statement({**data, "test_fmri": ["/d/sub-04_Test.h5"]})
    assert stranger.note is not None and "sub-04" in stranger.note
