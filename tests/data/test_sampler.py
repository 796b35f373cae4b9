"""Batches cut on the training device: same batches on every device, placement choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from e2e_recon.data import sampler as sampler_mod
from e2e_recon.data.dataset import NormStats, TrainingSet
from e2e_recon.data.images import CAFFE_MEAN_BGR
from e2e_recon.data.sampler import CropSampler, choose_data_device, training_set_bytes
from e2e_recon.errors import ConfigError
from e2e_recon.train.sampling import EpochOrder, make_sampler


def _training_set(n_images: int = 4, size: int = 20, presentations: int = 3) -> TrainingSet:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_images, size, size, 3), dtype=np.uint8)  # (M, S, S, 3)
    index = np.repeat(np.arange(n_images), presentations)  # (N,)
    voxels = rng.standard_normal((index.size, 7)).astype(np.float32)  # (N, V)
    norm = NormStats(np.zeros(7, np.float32), np.ones(7, np.float32), "ROI_VC = 1")
    ids = np.arange(n_images, dtype=np.float64)
    return TrainingSet(voxels, index, images, ids, [str(i) for i in ids], norm)


def _slice_crops(images: np.ndarray, rows: list[int], tops: list[int], lefts: list[int], c: int):
    """Crops cut one by one with numpy slices: the reference."""
    mean = np.asarray(CAFFE_MEAN_BGR, dtype=np.float32)
    out = [images[i, y : y + c, x : x + c].astype(np.float32) - mean for i, y, x in
           zip(rows, tops, lefts, strict=True)]  # fmt: skip
    return np.stack(out).transpose(0, 3, 1, 2)  # (B, 3, c, c)


def test_crops_match_slices_and_are_channels_last() -> None:
    ts = _training_set()
    sampler = CropSampler(ts, crop_px=13)
    rows, tops, lefts = [3, 0, 3, 1], [0, 7, 2, 5], [7, 0, 4, 1]
    got = sampler.crops(torch.tensor(rows), torch.tensor(tops), torch.tensor(lefts))
    assert got.shape == (4, 3, 13, 13) and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(got.numpy(), _slice_crops(ts.images, rows, tops, lefts, 13))


def test_crops_of_a_non_contiguous_image_tensor() -> None:
    ts = _training_set()
    sampler = CropSampler(ts, crop_px=9)
    sampler.images = torch.from_numpy(ts.images).flip(0)  # negative stride: copied first
    got = sampler.crops(torch.tensor([0, 2]), torch.tensor([1, 11]), torch.tensor([11, 0]))
    expected = _slice_crops(ts.images[::-1], [0, 2], [1, 11], [11, 0], 9)
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("k", [1, 3])
def test_device_batches_equal_cpu_batches(device: torch.device, k: int) -> None:
    """The draws stay on the CPU generator, so every device gets the very same batches."""
    ts = _training_set()
    on_cpu, on_device = make_sampler(ts, 11, k, 0.5), make_sampler(ts, 11, k, 0.5, device)
    g_cpu, g_dev = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    order = EpochOrder(len(on_cpu), seed=1)
    for step in range(4):
        rows = order.next_rows(5) if step % 2 else None
        v_cpu, c_cpu = on_cpu.sample(5, g_cpu, rows)
        v_dev, c_dev = on_device.sample(5, g_dev, rows)
        assert v_dev.device.type == c_dev.device.type == device.type
        torch.testing.assert_close(v_dev.cpu(), v_cpu, rtol=1e-6, atol=1e-6)
        assert torch.equal(c_dev.cpu(), c_cpu)
    assert torch.equal(g_cpu.get_state(), g_dev.get_state())


def test_placement_on_cpu_and_bad_value() -> None:
    cpu = torch.device("cpu")
    where, message = choose_data_device(10 * 2**20, cpu)
    assert where == cpu and "host memory" in message
    with pytest.raises(ConfigError, match=r"data.placement='gpu'.*auto, device, host"):
        choose_data_device(1, cpu, "gpu")


def test_placement_auto_follows_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A set that fits in the share of free memory goes on the device, else stays home."""
    gpu = torch.device("cuda")
    free = 8 * 2**30
    monkeypatch.setattr(sampler_mod, "_free_and_total", lambda device: (free, 2 * free))
    fits = int(sampler_mod.MAX_DATA_SHARE * free) - 1
    assert choose_data_device(fits, gpu)[0] == gpu
    where, message = choose_data_device(fits + 2, gpu)
    assert where.type == "cpu"
    assert "kept in host memory" in message and "data.placement=device" in message
    assert choose_data_device(fits + 2, gpu, "device")[0] == gpu
    assert choose_data_device(fits, gpu, "host")[0].type == "cpu"
    monkeypatch.setattr(sampler_mod, "_free_and_total", lambda device: None)
    assert choose_data_device(1, gpu)[0].type == "cpu"


def test_training_set_bytes_counts_images_and_voxels() -> None:
    ts = _training_set(n_images=2, size=10, presentations=2)
    assert training_set_bytes(ts) == 2 * 10 * 10 * 3 + 4 * 7 * 4
