"""Device and numeric-precision choice.

``precision: fp32`` is strict float32: no autocast, and TF32 off on CUDA (see
:func:`tf32_mode`), as the published models were trained.

``precision: auto`` decides per machine. On CUDA, bfloat16 autocast is used when
the GPU supports it, with TF32 for what stays in float32. On CPU, bfloat16 pays
off only where the processor runs it natively (AVX-512 BF16 or AMX); on AVX2-only
processors it is emulated and runs 5-60x slower. So on CPU ``auto`` picks bf16
only when the CPU flags say native support AND a short probe confirms that bf16 is
faster than float32 here; the probe result is cached per CPU model and torch version.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from e2e_recon.errors import ConfigError

_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_DEVICES = ("auto", "cpu", "cuda", "mps")
_PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|mps`` (or ``cuda:N``) into a usable device.

    Raises
    ------
    ConfigError
        Unknown name, or a device that is not available on this machine.
    """
    base = name.split(":")[0]
    if base not in _DEVICES:
        raise ConfigError(f"unknown device {name!r}: use one of {', '.join(_DEVICES)}")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if base == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' requested but MPS is not available; use --device cpu")
    return torch.device(name)


def cpu_info() -> dict[str, object]:
    """CPU model and its bfloat16 capability, for benchmarks and logs."""
    model, flags = _cpu_model_and_flags()
    native = sorted(f for f in _NATIVE_BF16_FLAGS if f in flags)
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "native_bf16_flags": native,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "avx2": "avx2" in flags,
        "torch": torch.__version__,
    }


def resolve_precision(
    precision: str, device: torch.device, cache_path: Path | None = None
) -> torch.dtype:
    """Choose the autocast dtype: ``torch.float32`` (no autocast) or ``torch.bfloat16``.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16"}
    device : torch.device
    cache_path : Path, optional
        Where the CPU probe result is cached (default: the user cache folder).
    """
    if precision not in _PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: use one of {', '.join(_PRECISIONS)}")
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16_is_faster(cache_path) else torch.float32
    return torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[None]:
    """Autocast context for ``dtype``; a no-op for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def allows_tf32(precision: str) -> bool:
    """Whether ``train.precision`` lets CUDA use TF32 for float32 matmuls and convolutions.

    ``fp32`` is strict float32, as the published models were trained (Caffe, 2016):
    TF32 keeps only 10 mantissa bits. ``auto`` and ``bf16`` trade exactness for speed
    and allow it for whatever stays in float32.
    """
    return precision != "fp32"


@contextlib.contextmanager
def tf32_mode(enabled: bool) -> Iterator[None]:
    """Allow or forbid TF32 in CUDA matmuls and cuDNN convolutions; restore on exit.

    PyTorch's own defaults differ (matmuls off, cuDNN convolutions on), so a float32 run
    on an Ampere or newer GPU would otherwise compute its convolutions in TF32. The flags
    exist on every build and do nothing without CUDA.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def cpu_bf16_is_faster(cache_path: Path | None = None) -> bool:
    """True when this CPU has native bf16 and a short probe finds bf16 autocast faster."""
    model, flags = _cpu_model_and_flags()
    if not any(f in flags for f in _NATIVE_BF16_FLAGS):
        return False  # emulated bf16: tens of times slower, never worth probing
    path = cache_path or _default_cache_path()
    key = f"{model}|{torch.__version__}|{torch.get_num_threads()}|probe2"
    cached = _read_cache(path)
    if key in cached:
        return bool(cached[key]["bf16_faster"])
    fp32_s, bf16_s = _probe_seconds()
    cached[key] = {"bf16_faster": bf16_s < 0.85 * fp32_s, "fp32_s": fp32_s, "bf16_s": bf16_s}
    _write_cache(path, cached)
    return bool(cached[key]["bf16_faster"])


def _probe_seconds() -> tuple[float, float]:
    """Time a small generator-like step in fp32 and bf16 autocast (CPU).

    Wide fully connected layers and a transposed convolution, forward and backward:
    the layers that dominate a training step of the published architecture. (A
    probe of small convolutions alone found no gain where the full paper-sized step
    ran 2.6x faster in bf16.)
    """
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Linear(2048, 2048), nn.LeakyReLU(0.3), nn.Linear(2048, 2048))
    deconv = nn.Sequential(
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
        nn.LeakyReLU(0.3),
        nn.Conv2d(32, 32, 3, padding=1),
    )
    x_dense = torch.randn(64, 2048)  # (B, features)
    x_conv = torch.randn(8, 64, 32, 32)  # (B, C, H, W)

    def step() -> torch.Tensor:
        return dense(x_dense).float().sum() + deconv(x_conv).float().sum()

    def once(dtype: torch.dtype) -> float:
        start = time.perf_counter()
        with autocast(torch.device("cpu"), dtype):
            step().backward()
        return time.perf_counter() - start

    once(torch.float32), once(torch.bfloat16)  # warm-up: kernel selection, allocations
    # Interleaved rounds and the minimum of each: other load on the machine slows both
    # alike instead of favouring whichever ran in a quiet moment.
    rounds = [(once(torch.float32), once(torch.bfloat16)) for _ in range(6)]
    return min(r[0] for r in rounds), min(r[1] for r in rounds)


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    model: str = platform.processor() or platform.machine()
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and model in ("", platform.machine()):
                model = value.strip()
            elif name.strip() == "flags" and not flags:
                flags = set(value.split())
    return model, flags


def _default_cache_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("e2e-recon")) / "precision_probe.json"


def _read_cache(path: Path) -> dict[str, dict[str, object]]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return data
    return {}


def _write_cache(path: Path, data: dict[str, dict[str, object]]) -> None:
    with contextlib.suppress(OSError):  # a read-only cache folder only costs a re-probe
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (None leaves it alone)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
