"""Device and numeric-precision choice.

``precision: fp32`` is strict float32: no autocast, and TF32 off on CUDA (see
:func:`tf32_mode`), as the published models were trained.

``precision: auto`` decides per machine. On CUDA, bfloat16 autocast is used when
the GPU supports it, with TF32 for what stays in float32. On CPU, bfloat16 pays
off only where the processor runs it natively (AVX-512 BF16 or AMX); on AVX2-only
processors it is emulated and runs 5-60x slower, so ``auto`` takes fp32 there
without measuring. Where it is native, :func:`choose_precision` times the step
itself in both precisions (a training run passes its own step) and takes bf16 when
it is at least 1.15x faster; the verdict is cached per CPU model, flags, torch
version, thread count and step, and measured again when it came from a disturbed
measurement or was too close to call.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from e2e_recon.errors import ConfigError

_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: ``auto`` takes bf16 when the step runs at least this many times faster in it.
BF16_MIN_SPEEDUP = 1.15
#: Slowest over fastest timed step above this: the measurement was disturbed by other load.
DISTURBED_SPREAD = 1.3
#: ``step(dtype)``: run one step in that autocast dtype and return its seconds.
StepTimer = Callable[[torch.dtype], float]
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
        "avx512f": "avx512f" in flags,
        "avx2": "avx2" in flags,
        "torch": torch.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def resolve_precision(
    precision: str, device: torch.device, cache_path: Path | None = None
) -> torch.dtype:
    """Choose the autocast dtype: ``torch.float32`` (no autocast) or ``torch.bfloat16``.

    The dtype of :func:`choose_precision` timing a small generic step; a training
    run times its own step instead (``e2e_recon.train.precision_probe``).

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16"}
    device : torch.device
    cache_path : Path, optional
        Where the CPU measurement is cached (default: the user cache folder).
    """
    return choose_precision(precision, device, cache_path=cache_path).dtype


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses, and why: what the run's log and summary report.

    ``how`` is ``configured`` (fp32 or bf16 asked for), ``cuda`` (bf16 where the GPU
    supports it), ``other device``, ``no native bf16`` (CPU flags: no measurement),
    ``measured`` or ``cached`` (the step timed in both precisions, here or earlier).
    ``fp32_s`` and ``bf16_s`` are the fastest of the timed steps in each precision;
    ``spread`` the largest ratio of slowest to fastest among them (1.0: steady).
    """

    dtype: torch.dtype
    requested: str
    how: str
    fp32_s: float | None = None
    bf16_s: float | None = None
    spread: float | None = None
    rounds: int = 0

    @property
    def name(self) -> str:
        """``bf16`` or ``fp32``."""
        return "bf16" if self.dtype == torch.bfloat16 else "fp32"

    @property
    def speedup(self) -> float | None:
        """fp32 step time over bf16 step time (None when not measured)."""
        if self.fp32_s is None or not self.bf16_s:
            return None
        return self.fp32_s / self.bf16_s

    def describe(self) -> str:
        """One line for the run's log."""
        head = f"precision {self.requested} -> {self.name}"
        if self.speedup is None:
            return f"{head} ({self.how})"
        again = "; measured again next run" if self.how.startswith("measured,") else ""
        return (
            f"{head}: the step took {self.fp32_s:.3f} s in fp32 and {self.bf16_s:.3f} s in "
            f"bf16 ({self.speedup:.2f}x; bf16 from {BF16_MIN_SPEEDUP}x), fastest of "
            f"{self.rounds} interleaved rounds, spread {self.spread:.2f} ({self.how}{again})"
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields for the run's summary."""
        return {
            "requested": self.requested,
            "chosen": self.name,
            "how": self.how,
            "fp32_s": self.fp32_s,
            "bf16_s": self.bf16_s,
            "speedup": round(self.speedup, 3) if self.speedup is not None else None,
            "spread": self.spread,
            "rounds": self.rounds,
        }


def choose_precision(
    precision: str,
    device: torch.device,
    step: StepTimer | None = None,
    signature: str = "generic-probe",
    cache_path: Path | None = None,
    remeasure: bool = False,
) -> PrecisionChoice:
    """Choose the autocast dtype and say why.

    ``auto`` on a CPU with native bf16 (AVX-512 BF16 or AMX) times ``step`` in fp32
    and bf16 autocast, interleaved (:func:`measure_step`), and takes bf16 when it is at
    least :data:`BF16_MIN_SPEEDUP` times faster. The verdict is cached per CPU model,
    flags, torch version, thread count and ``signature``. A verdict from a disturbed
    measurement (spread above :data:`DISTURBED_SPREAD`), or one whose speedup lies
    within that spread of the threshold (``close``), is used once and measured
    again by the next run. CPUs without native bf16 never measure: fp32.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16"}
    device : torch.device
    step : callable, optional
        ``step(dtype)`` runs one step in that autocast dtype and returns its seconds;
        it must not change anything the caller keeps. Default: a small generic step.
    signature : str
        What determines the step's speed (architecture, batch, crop, loss terms).
    cache_path : Path, optional
        The cache file (default: the user cache folder).
    remeasure : bool
        Measure even when a steady cached verdict exists.
    """
    if precision not in _PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: use one of {', '.join(_PRECISIONS)}")
    if precision != "auto":
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        return PrecisionChoice(dtype, precision, "configured")
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return PrecisionChoice(torch.bfloat16 if bf16 else torch.float32, "auto", "cuda")
    if device.type != "cpu":
        return PrecisionChoice(torch.float32, "auto", "other device")
    model, flags = _cpu_model_and_flags()
    native = sorted(f for f in _NATIVE_BF16_FLAGS if f in flags)
    if not native:  # emulated bf16: tens of times slower, never worth measuring
        return PrecisionChoice(torch.float32, "auto", "no native bf16")
    path = cache_path or _default_cache_path()
    key = "|".join(
        [model, ",".join(native), torch.__version__, str(torch.get_num_threads()), signature]
    )
    cached = _read_cache(path)
    entry = cached.get(key)
    if entry is not None and not remeasure and _settled(entry):
        return _from_times(entry, "cached")
    fp32_times, bf16_times = measure_step(step or _generic_step())
    spread = max(max(t) / min(t) for t in (fp32_times, bf16_times))
    speedup = min(fp32_times) / min(bf16_times)
    entry = {
        "fp32_s": round(min(fp32_times), 4),
        "bf16_s": round(min(bf16_times), 4),
        "spread": round(spread, 3),
        "rounds": len(fp32_times),
        "disturbed": spread > DISTURBED_SPREAD,
        # Within the measurement's own scatter of the threshold: the verdict could flip.
        "close": BF16_MIN_SPEEDUP / spread < speedup < BF16_MIN_SPEEDUP * spread,
    }
    cached[key] = entry
    _write_cache(path, cached)
    unsettled = [w for w in ("disturbed", "close") if entry[w]]
    return _from_times(entry, ", ".join(["measured", *unsettled]))


def _settled(entry: dict[str, object]) -> bool:
    """A cached verdict from a steady measurement, clear of the threshold."""
    return not entry.get("disturbed", True) and not entry.get("close", False)


def _from_times(entry: dict[str, object], how: str) -> PrecisionChoice:
    fp32_s, bf16_s = float(str(entry["fp32_s"])), float(str(entry["bf16_s"]))
    faster = bf16_s > 0 and fp32_s >= BF16_MIN_SPEEDUP * bf16_s
    return PrecisionChoice(
        torch.bfloat16 if faster else torch.float32, "auto", how, fp32_s, bf16_s,
        float(str(entry.get("spread", 1.0))), int(str(entry.get("rounds", 0))),
    )  # fmt: skip


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


def measure_step(
    step: StepTimer, rounds: int = 3, max_rounds: int = 6
) -> tuple[list[float], list[float]]:
    """Time ``step`` in fp32 and bf16, interleaved; return the seconds of each.

    One untimed step in each precision first (allocations, oneDNN kernel choice).
    The rounds alternate which precision goes first, so that load arriving or leaving
    mid-measurement favours neither; the fastest of each is what load inflates least.
    When the times spread by more than :data:`DISTURBED_SPREAD`, rounds are added (up
    to ``max_rounds``) to give a quiet moment more chances.
    """
    step(torch.float32), step(torch.bfloat16)
    fp32: list[float] = []
    bf16: list[float] = []
    for i in range(max_rounds):
        order = (torch.float32, torch.bfloat16) if i % 2 == 0 else (torch.bfloat16, torch.float32)
        for dtype in order:
            (fp32 if dtype == torch.float32 else bf16).append(step(dtype))
        if i + 1 >= rounds and max(max(t) / min(t) for t in (fp32, bf16)) <= DISTURBED_SPREAD:
            break
    return fp32, bf16


def _generic_step() -> StepTimer:
    """A small generator-like step (wide linear layers, a transposed convolution).

    For callers without a step of their own; it resembles a training step only
    roughly (see docs/speed.md). Built under a forked RNG: the caller's stream is
    left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        dense = nn.Sequential(nn.Linear(2048, 2048), nn.LeakyReLU(0.3), nn.Linear(2048, 2048))
        deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            nn.LeakyReLU(0.3),
            nn.Conv2d(32, 32, 3, padding=1),
        )
        x_dense = torch.randn(64, 2048)  # (B, features)
        x_conv = torch.randn(8, 64, 32, 32)  # (B, C, H, W)

    def step(dtype: torch.dtype) -> float:
        start = time.perf_counter()
        with autocast(torch.device("cpu"), dtype):
            (dense(x_dense).float().sum() + deconv(x_conv).float().sum()).backward()
        return time.perf_counter() - start

    return step


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
