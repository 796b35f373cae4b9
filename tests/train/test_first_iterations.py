"""The first iterations of a tiny paper-configured run, recomputed by hand from the same weights.

For each iteration the weights both networks held when it began, its batch and the state
of the random stream (the discriminator's dropout) are recorded; the losses, the balance
decision, which network stepped and the learning rates are then worked out here from the
published formulas (REFERENCE.md, "Losses and weights", "One training iteration") and
compared with what the loop logged.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_train_subject import make_tiny_subject, tiny_config

from e2e_recon.train import checkpoint as ckpt_io
from e2e_recon.train import loop
from e2e_recon.train.stats import read_stats

ITERS = 4
BASE_LR, MILESTONE = 2e-4, 2
# D stops after its first update (r < 1e9) and never resumes; G is never stopped.
SETTINGS = (f"train.iters={ITERS}", f"train.lr_halve_at_iters=[{MILESTONE}]",
            "train.snapshot_every_iters=100", "train.balance_stop_d_below=1e9",
            "train.balance_resume_d_above=1e9", "train.balance_stop_g_above=1e9")  # fmt: skip


def _clone(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _record_iterations(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Patch the loop's step to keep each iteration's inputs and starting weights."""
    records: list[dict[str, Any]] = []
    real_step = loop.training_step

    def recording_step(
        nets: Any, opt: Any, voxels: torch.Tensor, real: torch.Tensor, *rest: Any
    ) -> dict[str, torch.Tensor]:
        records.append({
            "nets": nets, "G": _clone(nets.generator), "D": _clone(nets.discriminator),
            "rng": torch.get_rng_state(), "voxels": voxels.clone(), "real": real.clone(),
        })  # fmt: skip
        terms = real_step(nets, opt, voxels, real, *rest)  # rest: balance, weights, settings
        records[-1]["terms"] = {k: float(v) for k, v in terms.items()}
        return terms

    monkeypatch.setattr(loop, "training_step", recording_step)
    return records


def _cross_entropy(logits: torch.Tensor, label: int) -> float:
    """Batch mean of -log softmax(logits)[label], written out."""
    return float((torch.logsumexp(logits, dim=1) - logits[:, label]).mean())


def _euclidean(a: torch.Tensor, b: torch.Tensor) -> float:
    """Caffe's EuclideanLoss: sum of squared differences / 2 / batch."""
    return float(((a - b) ** 2).sum() / 2 / a.shape[0])


def _by_hand(rec: dict[str, Any], d_after: dict[str, torch.Tensor]) -> dict[str, float]:
    """Losses of one iteration from its starting weights (D's for the G pass: ``d_after``)."""
    nets = rec["nets"]
    generator = copy.deepcopy(nets.generator)
    generator.load_state_dict(rec["G"])
    d_now, d_next = copy.deepcopy(nets.discriminator), copy.deepcopy(nets.discriminator)
    d_now.load_state_dict(rec["D"])
    d_next.load_state_dict(d_after)
    real = rec["real"]  # (B, 3, 63, 63)
    batch, crop = real.shape[0], real.shape[-1]
    torch.set_rng_state(rec["rng"])  # the same dropout masks, drawn in the same order
    with torch.no_grad():
        out = generator(rec["voxels"])  # (B, 3, 64, 64)
        top = (out.shape[-1] - crop) // 2
        fake = out[:, :, top : top + crop, top : top + crop]  # (B, 3, 63, 63)
        logits = d_now(torch.cat([real, fake]))  # (2B, 2): real labelled 0, fake 1
        g_logits = d_next(fake)  # (B, 2): the G pass sees D after its step
        real_feat = nets.comparator(real, layers=("conv1",))["conv1"]
        fake_feat = nets.comparator(fake, layers=("conv1",))["conv1"]
    values = {
        "d_real": _cross_entropy(logits[:batch], 0),
        "d_fake": _cross_entropy(logits[batch:], 1),
        "adversarial": _cross_entropy(g_logits, 0),
        "image": _euclidean(fake, real),
        "feature": _euclidean(fake_feat, real_feat),
    }
    values["loss_g"] = (
        2e-6 * values["image"] + 0.01 * values["feature"] + 100.0 * values["adversarial"]
    )
    return values


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before)


def _lr(updates_before: int) -> float:
    return BASE_LR * 0.5 ** (updates_before >= MILESTONE)


def test_first_iterations_match_a_hand_computation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = make_tiny_subject(tmp_path / "subject")
    records = _record_iterations(monkeypatch)
    loop.train(tiny_config(subject, *SETTINGS), tmp_path / "run")
    rows = read_stats(tmp_path / "run" / "stats.jsonl")
    final = ckpt_io.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert len(records) == len(rows) == ITERS
    starts_g = [r["G"] for r in records] + [final["generator"]]
    starts_d = [r["D"] for r in records] + [final["discriminator"]]

    train_d = train_g = True  # both networks train in the first iteration
    updates_g = updates_d = 0
    for i, (rec, row) in enumerate(zip(records, rows, strict=True)):
        hand = _by_hand(rec, starts_d[i + 1])
        for name, value in hand.items():
            assert rec["terms"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (i, name)
            assert row[name] == pytest.approx(value, rel=1e-4, abs=1e-6), (i, name)
        # Which network stepped: the logged flags, and whether its weights moved.
        assert (row["train_d"], row["train_g"]) == (train_d, train_g), i
        assert _changed(starts_d[i], starts_d[i + 1]) == train_d, i
        assert _changed(starts_g[i], starts_g[i + 1]) == train_g, i
        # Learning rates: each halves after MILESTONE updates of its own network.
        assert row["lr_g"] == pytest.approx(_lr(updates_g)), i
        assert row["lr_d"] == pytest.approx(_lr(updates_d)), i
        updates_g, updates_d = updates_g + train_g, updates_d + train_d
        # Balance rule, in the published order, on this iteration's unweighted losses.
        ratio = (hand["d_real"] + hand["d_fake"]) / hand["adversarial"]
        assert row["ratio"] == pytest.approx(ratio, rel=1e-4), i
        if ratio < 1e9 and train_d:
            train_d, train_g = False, True
        if ratio > 1e9 and not train_d:
            train_d = train_g = True
    # D starts unsaturated (published msra_coeff 0.1): both its losses near log 2.
    first = records[0]["terms"]
    assert first["d_real"] == pytest.approx(math.log(2), abs=0.05)
    assert first["d_fake"] == pytest.approx(math.log(2), abs=0.05)
    assert (updates_g, updates_d) == (ITERS, 1)
    assert final["schedule_g"]["updates"] == ITERS and final["schedule_d"]["updates"] == 1
    assert [r["lr_d"] for r in rows] == pytest.approx([BASE_LR] * ITERS)  # D's stood still
