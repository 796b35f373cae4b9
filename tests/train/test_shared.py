"""Shared training (several subjects, one generator): the run's files, per-subject
validation, the batch rule, exact resume, and picking a subject when loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_multi_subject import make_multi_subject, shared_config

from e2e_recon.config import load_config, with_overrides
from e2e_recon.data.home import subject_in_file_name
from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.nets.generator import Generator
from e2e_recon.nets.loading import load_generator
from e2e_recon.nets.shared import StackedGenerator, stacked_to_file
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train.loop import train
from e2e_recon.train.shared import SharedData, SubjectMixSampler
from e2e_recon.train.stats import read_stats

SUBJECTS = ["sub-01", "sub-02", "sub-03"]


@pytest.fixture(scope="module")
def subjects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Three tiny subjects (48, 40 and 56 voxels) who saw the same 32 images."""
    return make_multi_subject(tmp_path_factory.mktemp("subjects"))


@pytest.fixture(scope="module")
def shared_run(subjects: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("shared") / "run"
    train(shared_config(subjects), run)
    return run


def test_generator_file_names_every_subjects_input_layer(shared_run: Path) -> None:
    payload = torch.load(shared_run / "generator.pt", weights_only=True)
    assert payload["arch"]["subjects"] == {"sub-01": 48, "sub-02": 40, "sub-03": 56}
    state = payload["state_dict"]
    for name, count in payload["arch"]["subjects"].items():
        assert state[f"inputs.{name}.weight"].shape == (64, count)
        assert set(payload["norm"]["subjects"][name]) >= {"mean", "std", "roi"}
    assert "defc7.weight" not in state and state["defc6.weight"].shape == (64, 64)
    # Each subject's generator is its own input layer in front of the same shared layers.
    generators = [load_generator(shared_run / "generator.pt", subject=s) for s in SUBJECTS]
    assert [g.n_voxels for g in generators] == [48, 40, 56]
    assert all(isinstance(g, Generator) and not g.training for g in generators)
    assert [getattr(g, "subject", None) for g in generators] == SUBJECTS
    assert torch.equal(generators[0].defc6.weight, generators[2].defc6.weight)
    assert torch.equal(generators[1].defc7.weight, state["inputs.sub-02.weight"])


def test_shared_file_without_or_with_an_unknown_subject_lists_the_subjects(
    shared_run: Path,
) -> None:
    with pytest.raises(ModelFormatError, match="subjects sub-01, sub-02, sub-03"):
        load_generator(shared_run / "generator.pt")
    with pytest.raises(ModelFormatError, match=r"'sub-09'; it holds sub-01, sub-02, sub-03"):
        load_generator(shared_run / "generator.pt", subject="sub-09")


def test_validation_is_the_mean_over_subjects_and_each_subject_is_logged(
    shared_run: Path,
) -> None:
    rows = [r for r in read_stats(shared_run / "stats.jsonl") if "val_pixcorr" in r]
    assert [r["iteration"] for r in rows] == [2, 4, 6]
    for row in rows:
        per = [row[f"val_{s}/pixcorr"] for s in SUBJECTS]
        assert row["val_pixcorr"] == pytest.approx(np.mean(per))
    best = torch.load(shared_run / "best.pt", weights_only=True)
    assert best["meta"]["selected_by"] == "validation" and "subjects" in best["arch"]


def test_stacked_generator_is_each_subjects_generator(shared_run: Path) -> None:
    """The training form (voxel blocks side by side) and the file form give one output."""
    ckpt = ckpt_io.load_checkpoint(shared_run / "checkpoints" / "latest.pt")
    stacked = StackedGenerator(**ckpt["generator_arch"])
    stacked.load_state_dict(ckpt["generator"])
    stacked.eval()
    arch, state = stacked_to_file(ckpt["generator_arch"], ckpt["generator"])
    x = torch.randn(3, 40)
    with torch.no_grad():
        expected = stacked(stacked.stack(x, "sub-02"))
        single = Generator(40, **{k: v for k, v in arch.items() if k != "subjects"})
        own = {"defc7." + k.rsplit(".", 1)[1]: v for k, v in state.items()
               if k.startswith("inputs.sub-02.")}  # fmt: skip
        shared = {k: v for k, v in state.items() if not k.startswith("inputs.")}
        single.load_state_dict(own | shared)
        assert torch.allclose(single.eval()(x), expected, atol=1e-5)


@pytest.mark.slow
def test_interrupted_and_resumed_shared_run_equals_uninterrupted(
    subjects: dict[str, object], tmp_path: Path
) -> None:
    cfg = shared_config(subjects, "train.iters=5", "train.snapshot_every_iters=2")
    train(cfg, tmp_path / "straight")
    train(with_overrides(cfg, ["train.iters=3"]), tmp_path / "split")
    summary = train(cfg, tmp_path / "split", resume=True)
    assert summary["start_iteration"] == 3 and summary["iterations"] == 5
    straight, split = (
        ckpt_io.load_checkpoint(tmp_path / name / "checkpoints" / "latest.pt")
        for name in ("straight", "split")
    )
    for key in ("generator", "discriminator"):
        for name, value in straight[key].items():
            assert torch.equal(value, split[key][name]), name
    for name, value in straight["generator_ema"]["weights"].items():
        assert torch.equal(value, split["generator_ema"]["weights"][name]), name
    rows = read_stats(tmp_path / "split" / "stats.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5]
    assert (
        rows[3]["val_sub-02/pixcorr"]
        == read_stats(tmp_path / "straight" / "stats.jsonl")[3]["val_sub-02/pixcorr"]
    )


class _Counted:
    def __init__(self, n: int, width: int) -> None:
        self.n, self.width = n, width

    def __len__(self) -> int:
        return self.n

    def sample(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones(count, self.width), torch.zeros(count, 3, 4, 4)


def _mix(mix: str) -> SubjectMixSampler:
    data = SharedData(["a", "b", "c"], [type("S", (), {"voxels": np.zeros((1, w))})()
                                         for w in (2, 3, 4)])  # fmt: skip
    return SubjectMixSampler([_Counted(900, 2), _Counted(90, 3), _Counted(10, 4)], data, mix)


def test_equal_mix_gives_each_subject_an_equal_share_whatever_its_samples() -> None:
    sampler, generator = _mix("equal"), torch.Generator().manual_seed(0)
    totals = np.zeros(3)
    for _ in range(300):
        shares = sampler.shares(32, generator)
        assert sum(shares) == 32 and max(shares) - min(shares) <= 1
        totals += shares
    assert np.allclose(totals / totals.sum(), 1 / 3, atol=0.01)
    voxels, crops = sampler.sample(7, generator)
    assert voxels.shape == (7, 9) and crops.shape == (7, 3, 4, 4)
    # Every row fills exactly one subject's block.
    blocks = [voxels[:, 0:2].sum(1) > 0, voxels[:, 2:5].sum(1) > 0, voxels[:, 5:9].sum(1) > 0]
    assert torch.stack(blocks).sum(0).eq(1).all()


def test_proportional_mix_follows_the_sample_counts() -> None:
    sampler, generator = _mix("proportional"), torch.Generator().manual_seed(0)
    totals = np.sum([sampler.shares(32, generator) for _ in range(300)], axis=0)
    assert np.allclose(totals / totals.sum(), [0.9, 0.09, 0.01], atol=0.01)


def test_subject_names_come_from_file_names_or_are_refused(
    subjects: dict[str, object], tmp_path: Path
) -> None:
    path = "/x/sub-02_perceptionNaturalImageTraining_original_VC.h5"
    assert subject_in_file_name(path) == "sub-02"
    assert subject_in_file_name("training.h5") is None
    assert subject_in_file_name("sub-1_x.h5") == "sub-1"  # as written: layer names stay
    files = ", ".join(f"'{p}'" for p in subjects["train"])  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="--config shared"):
        train(load_config("small", [f"data.train_fmri_subjects=[{files}]"]), tmp_path / "a")
    renamed = tmp_path / "training.h5"
    renamed.write_bytes(Path(subjects["train"][1]).read_bytes())  # type: ignore[index]
    files_b = [subjects["train"][0], renamed]  # type: ignore[index]
    with pytest.raises(ConfigError, match="does not start with a subject"):
        train(shared_config({**subjects, "train": files_b}), tmp_path / "b")
    with pytest.raises(ConfigError, match=r"data\.sampling=random"):
        train(shared_config(subjects, "data.sampling=epoch"), tmp_path / "c")
