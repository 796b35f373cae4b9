"""Small-data training: validation, best.pt, early stopping, regularisation, exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_train_subject import make_tiny_subject, tiny_config

from e2e_recon.config import load_config, with_overrides
from e2e_recon.errors import ConfigError
from e2e_recon.nets.loading import load_generator
from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train import losses
from e2e_recon.train.loop import train
from e2e_recon.train.priors import first_linear, init_first_layer
from e2e_recon.train.sampling import PresentationAveragingSampler, make_sampler
from e2e_recon.train.setup import load_data, small_data_advice
from e2e_recon.train.stats import read_stats
from e2e_recon.train.step import StepSettings, build_nets, build_optimisers, training_step
from e2e_recon.train.validation import BestTracker, validation_plan

VAL = ("data.val_images=6", "train.val_every_iters=2")


@pytest.fixture(scope="module")
def subject(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tiny_subject(tmp_path_factory.mktemp("subject"), reps=3)


def test_validation_writes_val_keys_and_best_generator(
    subject: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    summary = train(tiny_config(subject, *VAL), run)
    rows = read_stats(run / "stats.jsonl")
    validated = [r for r in rows if "val_pixel_identification" in r]
    assert [r["iteration"] for r in validated] == [2, 4]
    for key in ("val_pixcorr", "val_image_loss", "val_feature_loss", "val_best"):
        assert math.isfinite(validated[-1][key]), key
    assert 0.0 <= validated[-1]["val_pixel_identification"] <= 1.0
    best = summary["best"]
    assert best["metric"] == "pixcorr" and best["iteration"] in (2, 4)  # the default metric
    payload = torch.load(run / "best.pt", weights_only=True)
    assert payload["format"] == ckpt_io.GENERATOR_FORMAT
    assert payload["meta"]["iteration"] == best["iteration"]
    assert load_generator(run / "best.pt").n_voxels == payload["norm"]["mean"].shape[0]


def test_early_stopping_stops_after_patience(subject: dict[str, Path], tmp_path: Path) -> None:
    # image_loss can only be beaten by a lower value; lr 0 freezes the generator.
    cfg = tiny_config(
        subject, *VAL, "train.iters=40", "train.lr=0", "train.best_metric=image_loss",
        "train.early_stop_patience=2",
    )  # fmt: skip
    summary = train(cfg, tmp_path / "run")
    assert summary["early_stopped"] and summary["iterations"] == 6  # best at 2, worse at 4, 6
    assert summary["best"]["iteration"] == 2
    assert ckpt_io.load_checkpoint(tmp_path / "run/checkpoints/latest.pt")["iteration"] == 6


def test_best_tracker_direction_and_nan() -> None:
    lower = BestTracker(higher_is_better=False)
    assert lower.update(3.0, 1) and not lower.update(float("nan"), 2) and lower.update(2.0, 3)
    assert lower.best_iteration == 3 and lower.since_best == 0
    assert not lower.update(2.5, 4) and lower.should_stop(1) and not lower.should_stop(0)


def test_exact_resume_with_every_setting_on(subject: dict[str, Path], tmp_path: Path) -> None:
    settings = (
        *VAL, "train.iters=6", "train.snapshot_every_iters=2", "train.presentation_average_k=2",
        "train.presentation_average_prob=0.5", "model.input_dropout=0.2",
        "model.first_layer_l2=0.01", "model.first_layer_init=pca", "loss.weighting=mean_image",
        "loss.warmup_iters=3", "train.early_stop_patience=10",
    )  # fmt: skip
    cfg = tiny_config(subject, *settings)
    train(cfg, tmp_path / "straight")
    train(with_overrides(cfg, ["train.iters=3"]), tmp_path / "split")
    train(cfg, tmp_path / "split", resume=True)
    a = ckpt_io.load_checkpoint(tmp_path / "straight/checkpoints/latest.pt")
    b = ckpt_io.load_checkpoint(tmp_path / "split/checkpoints/latest.pt")
    for name in a["generator"]:
        assert torch.equal(a["generator"][name], b["generator"][name]), name
    assert a["validation"] == b["validation"]
    val = [r for r in read_stats(tmp_path / "split/stats.jsonl") if "val_pixcorr" in r]
    assert [r["iteration"] for r in val] == [2, 4, 6]


def test_presentation_averaging_means_k_presentations_of_one_image(
    subject: dict[str, Path],
) -> None:
    data = load_data(tiny_config(subject))  # 24 images x 3 presentations
    sampler = make_sampler(data, 63, k=2)
    assert isinstance(sampler, PresentationAveragingSampler)
    gen = torch.Generator().manual_seed(0)
    images = torch.arange(24)
    chosen, n_used = sampler.choose_presentations(images, gen)
    assert torch.all(n_used == 2)
    for image, rows in zip(images.tolist(), chosen.tolist(), strict=True):
        picked = [r for r in rows if r >= 0]
        assert len(picked) == 2 and len(set(picked)) == 2
        assert all(data.image_index[r] == image for r in picked)
    gen = torch.Generator().manual_seed(1)
    voxels, _ = sampler.sample(16, gen)
    replay = torch.Generator().manual_seed(1)  # the same draws, reproduced by hand
    rows = torch.randint(len(sampler), (16,), generator=replay)
    torch.randint(sampler.crops_from.max_offset + 1, (2, 16), generator=replay)
    chosen, _ = sampler.choose_presentations(sampler.crops_from.image_index[rows], replay)
    x = torch.from_numpy(data.voxels)
    expected = torch.stack(
        [x[[r for r in c if r >= 0]].mean(0) * math.sqrt(2) for c in chosen.tolist()]
    )
    torch.testing.assert_close(voxels, expected)
    single = PresentationAveragingSampler(data, 63, k=3, prob=0.0)
    assert torch.all(single.choose_presentations(images, gen)[1] == 1)


def _first_adam_moments(
    subject: dict[str, Path], *extra: str, adversarial: bool = True
) -> dict[str, torch.Tensor]:
    """Adam's first moment after one generator step = the gradient (plus L2 decay) it saw."""
    from e2e_recon.train.balance import BalanceState
    from e2e_recon.train.distributed import DistInfo

    cfg = tiny_config(subject, "loss.feature_weight=0", "loss.adversarial_weight=0", *extra)
    nets = build_nets(cfg, 48, torch.device("cpu"), DistInfo())
    opt = build_optimisers(cfg, nets, torch.device("cpu"))
    settings = StepSettings(63, ("conv1",), torch.device("cpu"), adversarial=adversarial)
    voxels = torch.randn(4, 48, generator=torch.Generator().manual_seed(1))  # (B, V)
    real = torch.randn(4, 3, 63, 63, generator=torch.Generator().manual_seed(2)) * 50
    weights = losses.LossWeights(2e-6, 0, 0)
    training_step(nets, opt, voxels, real, BalanceState(), weights, settings)
    state = opt.generator.state
    return {n: state[p]["exp_avg"] for n, p in nets.generator.named_parameters() if p in state}


def test_zero_adversarial_weight_skips_the_discriminator(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from e2e_recon.nets.discriminator import Discriminator

    with_d = _first_adam_moments(subject)
    without_d = _first_adam_moments(subject, adversarial=False)
    for name in with_d:  # a zero-weight term adds no gradient either way
        torch.testing.assert_close(with_d[name], without_d[name])
    calls: list[int] = []
    original = Discriminator.forward

    def counting_forward(self: Discriminator, x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return original(self, x)

    monkeypatch.setattr(Discriminator, "forward", counting_forward)
    train(tiny_config(subject, "train.iters=2", "loss.adversarial_weight=0"), tmp_path / "a")
    assert calls == []
    rows = read_stats(tmp_path / "a" / "stats.jsonl")
    assert all(r["adversarial"] == 0 and r["loss_d"] == 0 for r in rows if "adversarial" in r)
    train(tiny_config(subject, "train.iters=2"), tmp_path / "b")
    assert calls  # with a weight, the discriminator runs


def test_first_layer_l2_changes_only_the_first_layer_gradient(subject: dict[str, Path]) -> None:
    plain = _first_adam_moments(subject)
    decayed = _first_adam_moments(subject, "model.first_layer_l2=0.5")
    changed = [n for n in plain if not torch.equal(plain[n], decayed[n])]
    assert changed == ["defc7.weight"]


def test_input_dropout_zeroes_inputs_in_training_only(
    subject: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[torch.Tensor] = []
    from e2e_recon.nets.generator import Generator

    original = Generator.forward

    def recording_forward(self: Generator, x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return original(self, x)

    monkeypatch.setattr(Generator, "forward", recording_forward)
    cfg = tiny_config(subject, *VAL, "train.iters=2", "model.input_dropout=0.5")
    train(cfg, tmp_path / "run")
    train_inputs, val_inputs = seen[0], seen[-1]  # a training batch; the validation batch
    assert (train_inputs == 0).float().mean() > 0.3  # about half the voxels zeroed
    kept = train_inputs != 0
    assert (train_inputs[kept].abs() > 0).all()
    assert (val_inputs != 0).all()  # no dropout at validation time


def test_first_layer_init_replaces_rows_with_data_directions(subject: dict[str, Path]) -> None:
    from e2e_recon.nets.generator import Generator

    data = load_data(tiny_config(subject))
    for method in ("pca", "ridge"):
        net = Generator(48, 64, 64, 16)
        net.reset_parameters(torch.Generator().manual_seed(0))
        before = first_linear(net).weight.detach().clone()
        rows = init_first_layer(net, data, method, 63)
        after = first_linear(net).weight.detach()
        assert 0 < rows <= 64
        assert not torch.equal(before[:rows], after[:rows]) and torch.equal(
            before[rows:], after[rows:]
        )
        assert after[:rows].norm(dim=1).mean() == pytest.approx(
            float(before.norm(dim=1).mean()), rel=1e-4
        )
    if True:  # pca rows are orthonormal directions of the voxels (up to the common scale)
        net = Generator(48, 64, 64, 16)
        init_first_layer(net, data, "pca", 63)
        w = first_linear(net).weight.detach()[:10].double()
        gram = (w / w.norm(dim=1, keepdim=True)) @ (w / w.norm(dim=1, keepdim=True)).T
        torch.testing.assert_close(gram, torch.eye(10, dtype=torch.float64), atol=1e-4, rtol=0)


def test_mean_image_weighting_scales_feature_term_to_image_term() -> None:
    base = losses.LossWeights(2e-6, 0.1, 0.01)
    w = losses.normalised_weights(base, image_at_mean=1e6, feature_at_mean=50.0)
    assert w.feature * 50.0 == pytest.approx(0.1 * 2e-6 * 1e6)
    assert w.adversarial * math.log(2) == pytest.approx(0.01 * 2e-6 * 1e6)
    assert losses.normalised_weights(base, 1e6, 0.0).feature == 0.0


def test_small_preset_loads_and_paper_preset_is_unchanged() -> None:
    small, paper = load_config("small"), load_config("paper")
    assert small.train.val_every_iters > 0 and small.data.val_fraction > 0
    assert paper.model.first_layer_l2 == 0 and paper.model.input_dropout == 0
    assert paper.model.first_layer_init == "random" and paper.loss.weighting == "absolute"
    assert paper.train.presentation_average_k == 1 and paper.train.val_every_iters == 0
    assert paper.data.val_images == 0 and paper.data.val_fraction == 0
    assert small_data_advice(paper, 1000) and small_data_advice(paper, 6000) is None
    assert small_data_advice(small, 1000) is None


def test_bad_settings_name_their_key(subject: dict[str, Path], tmp_path: Path) -> None:
    for setting, key in (
        ("loss.weighting=relative", "loss.weighting"),
        ("model.first_layer_init=ica", "model.first_layer_init"),
        ("train.best_metric=ssim", "train.best_metric"),
        ("train.best_min_delta=-1", "train.best_min_delta"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            train(tiny_config(subject, setting), tmp_path / "run")
    # A split that is never validated: the error says how to turn things on and off.
    unused_split = tiny_config(subject, "data.val_images=4", "train.early_stop_patience=3")
    with pytest.raises(ConfigError, match=r"early_stop_patience=0.*data\.val_fraction=0"):
        train(unused_split, tmp_path / "r")
    one_image = tiny_config(subject, "data.val_images=1", "train.val_every_iters=2")
    with pytest.raises(ConfigError, match=r"data\.val_fraction=0 data\.val_images=0"):
        train(one_image, tmp_path / "r2")
    assert not (tmp_path / "run").exists() and not (tmp_path / "r").exists()


def test_no_validation_split_turns_validation_best_and_early_stopping_off(
    subject: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The small preset's validation settings, with the one switch: no split.
    cfg = tiny_config(
        subject, "train.iters=4", "train.val_every_iters=2", "train.early_stop_patience=1",
        "data.val_fraction=0", "data.val_images=0",
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="e2e_recon"):
        summary = train(cfg, tmp_path / "run")
    assert summary["iterations"] == 4 and not summary["early_stopped"]
    assert summary["stop_reason"] == "done"
    assert not (tmp_path / "run" / "best.pt").exists()
    assert not [r for r in read_stats(tmp_path / "run/stats.jsonl") if "val_pixcorr" in r]
    assert "validation, best.pt and early stopping are off" in caplog.text


def test_small_validation_split_warns(subject: dict[str, Path]) -> None:
    cfg = tiny_config(subject, *VAL)
    data = load_data(cfg)
    on, notes = validation_plan(cfg, data.val)
    assert on and len(notes) == 1 and "6 images (< 20)" in notes[0]
    on, notes = validation_plan(with_overrides(cfg, ["train.val_every_iters=0"]), data.val)
    assert not on and "never uses them" in notes[0]


def test_best_tracker_counts_patience_from_clear_improvements() -> None:
    tracker = BestTracker(higher_is_better=True, min_delta=0.01)
    assert tracker.update(0.30, 1)
    assert tracker.update(0.305, 2) and tracker.since_best == 1  # best.pt moves, patience does not
    assert tracker.update(0.309, 3) and tracker.since_best == 2
    assert tracker.update(0.32, 4) and tracker.since_best == 0  # 0.32 > 0.30 + 0.01
    assert tracker.best_value == 0.32 and tracker.reference_value == 0.32
    restored = BestTracker.from_dict(tracker.to_dict())
    assert restored == tracker
    old = {k: v for k, v in tracker.to_dict().items() if k not in ("min_delta", "reference_value")}
    assert BestTracker.from_dict(old).update(0.5, 5)  # a snapshot from before the margin


def test_val_fraction_holds_out_whole_images(subject: dict[str, Path]) -> None:
    data = load_data(tiny_config(subject, "data.val_fraction=0.25"))
    assert data.val is not None and len(data.val.voxels) == 6  # 25% of 24 images
    assert np.all(data.val.n_trials == 3) and len(data.images) == 18


def test_time_limit_stops_with_a_snapshot(subject: dict[str, Path], tmp_path: Path) -> None:
    cfg = tiny_config(subject, "train.iters=1000", "train.max_minutes=1e-9")
    summary = train(cfg, tmp_path / "run")
    assert summary["iterations"] == 1 and summary["interrupted"]
    assert ckpt_io.load_checkpoint(tmp_path / "run/checkpoints/latest.pt")["iteration"] == 1
