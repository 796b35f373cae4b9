from __future__ import annotations

from pathlib import Path

import pytest
import torch

from e2e_recon import device as dev
from e2e_recon.errors import ConfigError


def test_resolve_device_cpu_and_errors() -> None:
    assert dev.resolve_device("cpu").type == "cpu"
    assert dev.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="unknown device"):
        dev.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cpu"):
            dev.resolve_device("cuda")


def test_explicit_precisions() -> None:
    cpu = torch.device("cpu")
    assert dev.resolve_precision("fp32", cpu) == torch.float32
    assert dev.resolve_precision("bf16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError, match="unknown precision"):
        dev.resolve_precision("fp8", cpu)


def test_auto_never_picks_bf16_without_native_support(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(dev, "_cpu_model_and_flags", lambda: ("Old CPU", {"avx2", "fma"}))
    monkeypatch.setattr(dev, "_probe_seconds", lambda: pytest.fail("must not probe"))
    assert dev.resolve_precision("auto", torch.device("cpu"), tmp_path / "p.json") == torch.float32


@pytest.mark.parametrize(("fp32_s", "bf16_s", "expected"), [(1.0, 0.4, True), (1.0, 0.95, False)])
def test_auto_follows_the_probe_and_caches_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fp32_s: float, bf16_s: float, expected: bool
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(dev, "_cpu_model_and_flags", lambda: ("New CPU", {"avx512_bf16"}))

    def probe() -> tuple[float, float]:
        calls.append(1)
        return fp32_s, bf16_s

    monkeypatch.setattr(dev, "_probe_seconds", probe)
    cache = tmp_path / "p.json"
    want = torch.bfloat16 if expected else torch.float32
    assert dev.resolve_precision("auto", torch.device("cpu"), cache) == want
    assert dev.resolve_precision("auto", torch.device("cpu"), cache) == want
    assert len(calls) == 1  # second call read the cache


def test_real_probe_runs() -> None:
    fp32_s, bf16_s = dev._probe_seconds()
    assert fp32_s > 0 and bf16_s > 0
    info = dev.cpu_info()
    assert {"cpu_model", "native_bf16_flags"} <= set(info)


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
