from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from e2e_recon import device as dev
from e2e_recon.errors import ConfigError

CPU = torch.device("cpu")


def test_resolve_device_cpu_and_errors() -> None:
    assert dev.resolve_device("cpu").type == "cpu"
    assert dev.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="unknown device"):
        dev.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cpu"):
            dev.resolve_device("cuda")


def test_explicit_precisions() -> None:
    assert dev.resolve_precision("fp32", CPU) == torch.float32
    assert dev.resolve_precision("bf16", CPU) == torch.bfloat16
    assert dev.choose_precision("bf16", CPU).how == "configured"
    with pytest.raises(ConfigError, match="unknown precision"):
        dev.resolve_precision("fp8", CPU)


def _timer(fp32_s: float, bf16_s: float, calls: list[torch.dtype]) -> dev.StepTimer:
    def step(dtype: torch.dtype) -> float:
        calls.append(dtype)
        return fp32_s if dtype == torch.float32 else bf16_s

    return step


def _native(monkeypatch: pytest.MonkeyPatch, flags: set[str] | None = None) -> None:
    flags = {"avx512f", "avx512_bf16"} if flags is None else flags
    monkeypatch.setattr(dev, "_cpu_model_and_flags", lambda: ("New CPU", flags))


def test_auto_never_measures_without_native_bf16(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _native(monkeypatch, {"avx2", "fma"})
    calls: list[torch.dtype] = []
    monkeypatch.setattr(dev, "_generic_step", lambda: pytest.fail("must not build a probe"))
    choice = dev.choose_precision("auto", CPU, _timer(1.0, 0.1, calls), "s", tmp_path / "p.json")
    assert choice.dtype == torch.float32 and choice.how == "no native bf16"
    assert calls == [] and not (tmp_path / "p.json").exists()
    assert dev.resolve_precision("auto", CPU, tmp_path / "p.json") == torch.float32


@pytest.mark.parametrize(
    ("fp32_s", "expected"), [(1.2, torch.bfloat16), (1.1, torch.float32), (2.7, torch.bfloat16)]
)
def test_auto_takes_bf16_from_1_15x_and_caches_the_verdict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fp32_s: float, expected: torch.dtype
) -> None:
    _native(monkeypatch)
    calls: list[torch.dtype] = []
    cache = tmp_path / "p.json"
    step = _timer(fp32_s, 1.0, calls)
    first = dev.choose_precision("auto", CPU, step, "paper-b64", cache)
    assert first.dtype == expected and first.how == "measured"
    assert (first.fp32_s, first.bf16_s, first.spread) == (fp32_s, 1.0, 1.0)
    # interleaved: one warm-up each, then rounds alternating which precision goes first
    assert calls == [torch.float32, torch.bfloat16] * 2 + [torch.bfloat16, torch.float32] + [
        torch.float32,
        torch.bfloat16,
    ]
    second = dev.choose_precision("auto", CPU, step, "paper-b64", cache)
    assert second.dtype == expected and second.how == "cached" and len(calls) == 8
    assert f"{first.speedup:.2f}x" in second.describe()
    # another step (batch, architecture) is measured on its own
    dev.choose_precision("auto", CPU, step, "demo-b32", cache)
    assert len(calls) == 16


def test_a_busy_first_measurement_is_measured_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A verdict from a disturbed measurement (large spread) does not stick."""
    _native(monkeypatch)
    cache = tmp_path / "p.json"
    # Busy: every bf16 step hit by load, and the times vary by 3x.
    busy = iter([0.27, 0.38, *[0.27, 1.1, 0.9, 0.38] * 10])
    calls: list[torch.dtype] = []

    def loaded(dtype: torch.dtype) -> float:
        calls.append(dtype)
        return next(busy)

    first = dev.choose_precision("auto", CPU, loaded, "paper", cache)
    assert first.dtype == torch.float32 and first.how == "measured, disturbed"
    assert first.rounds == 6  # rounds added in the hope of a quiet moment
    assert json.loads(cache.read_text())[next(iter(json.loads(cache.read_text())))]["disturbed"]
    quiet = dev.choose_precision("auto", CPU, _timer(1.0, 0.37, []), "paper", cache)
    assert quiet.dtype == torch.bfloat16 and quiet.how == "measured"
    assert dev.choose_precision("auto", CPU, _timer(1.0, 1.0, []), "paper", cache).how == "cached"
    again = dev.choose_precision("auto", CPU, _timer(1.0, 1.0, []), "paper", cache, remeasure=True)
    assert again.dtype == torch.float32


def test_a_verdict_too_close_to_call_is_measured_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """1.2x with steps scattering by 10%: within the scatter of 1.15x, so not cached for good."""
    _native(monkeypatch)
    cache = tmp_path / "p.json"
    times = iter([1.0, 1.0, *[1.2, 1.0, 1.1, 1.32] * 5])  # fp32 1.2-1.32, bf16 1.0-1.1
    close = dev.choose_precision("auto", CPU, lambda d: next(times), "demo", cache)
    assert close.dtype == torch.bfloat16 and close.how == "measured, close"
    again = dev.choose_precision("auto", CPU, _timer(1.0, 1.0, []), "demo", cache)
    assert again.dtype == torch.float32 and again.how == "measured"
    assert dev.choose_precision("auto", CPU, _timer(3.0, 1.0, []), "demo", cache).how == "cached"


def test_an_unreadable_cache_is_measured_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _native(monkeypatch)
    cache = tmp_path / "p.json"
    cache.write_text("{not json")
    choice = dev.choose_precision("auto", CPU, _timer(2.0, 1.0, []), "s", cache)
    assert choice.dtype == torch.bfloat16 and choice.how == "measured"


def test_cuda_and_other_devices_never_measure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    never: Callable[[torch.dtype], float] = lambda d: pytest.fail("must not measure")  # noqa: E731
    choice = dev.choose_precision("auto", torch.device("cuda"), never)
    assert choice.dtype == torch.bfloat16 and choice.how == "cuda"
    assert dev.choose_precision("auto", torch.device("mps"), never).dtype == torch.float32


def test_generic_step_runs_and_leaves_the_random_stream_alone() -> None:
    """The old probe reseeded the global generator (torch.manual_seed(0)) mid-setup."""
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    step = dev._generic_step()
    assert step(torch.float32) > 0 and step(torch.bfloat16) > 0
    assert torch.equal(torch.rand(3), expected)
    info = dev.cpu_info()
    assert {"cpu_model", "native_bf16_flags", "avx512f", "amx_bf16"} <= set(info)


def test_fp32_is_strict_and_tf32_mode_restores_the_flags() -> None:
    assert not dev.allows_tf32("fp32")
    assert dev.allows_tf32("auto") and dev.allows_tf32("bf16")
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    with dev.tf32_mode(False):
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
        with dev.tf32_mode(True):
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
    assert (matmul.allow_tf32, cudnn.allow_tf32) == before
