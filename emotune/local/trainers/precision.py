"""The number format open-weights models train and answer in: bf16 where the hardware computes it
natively (a CUDA GPU with bf16; for training, a CPU with AMX or AVX-512 BF16), fp16 on Apple's MPS,
float32 elsewhere.

On a bf16 CPU, ``auto`` trains in bf16 (mixed precision: 1.3x faster LoRA steps here) but answers in
float32: measured side by side, bf16 weights answered at 0.5x (1 in flight) to 1.0x (32 in flight)
of float32's speed.

The local backend's ``dtype`` option (``auto`` or a name) is set once per process by
:func:`configure`; training (:mod:`.sft_worker`, through its request) and serving (:mod:`.serving`)
both ask :func:`chosen`. Measured float32 against bf16, side by side: `benchmarks/bench_dtype.py`,
figures in `benchmarks/RESULTS.md`.
"""

from __future__ import annotations

from pathlib import Path

from ...core.errors import ConfigError

DTYPES = ("auto", "bfloat16", "float16", "float32")
CPU_BF16_FLAGS = (
    "amx_bf16",
    "avx512_bf16",
)  # /proc/cpuinfo flags of a CPU with native bf16 arithmetic

_setting = "auto"


def configure(setting: str | None) -> None:
    """Set this process's choice (``auto`` or a dtype name); checked here, before any model
    loads."""
    global _setting
    value = (setting or "auto").strip().lower()
    if value not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, not {setting!r}")
    _setting = value


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bf16 natively (Linux's /proc/cpuinfo; elsewhere no)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split()}
    return any(flag in flags for flag in CPU_BF16_FLAGS)


PURPOSES = ("training", "serving")


def resolve(
    setting: str, *, purpose: str, cuda: bool, cuda_bf16: bool, mps: bool, cpu_bf16: bool
) -> tuple[str, str]:
    """The dtype for a setting, a purpose (``training`` or ``serving``) and given hardware, and
    why (pure:
    the hardware is passed in)."""
    if setting != "auto":
        return setting, "asked for"
    if cuda:
        return (
            ("bfloat16", "CUDA GPU with bf16")
            if cuda_bf16
            else ("float16", "CUDA GPU without bf16")
        )
    if mps:
        return "float16", "Apple MPS"
    if cpu_bf16 and purpose == "training":
        return "bfloat16", "CPU with AMX or AVX-512 BF16"
    if cpu_bf16:
        return "float32", "bf16 answered no faster on this CPU"
    return "float32", "no native bf16 on this CPU"


def chosen(purpose: str = "serving") -> tuple[str, str]:
    """This process's dtype for ``purpose`` and the reason, from the setting and the hardware
    torch sees."""
    import torch

    cuda = torch.cuda.is_available()
    return resolve(
        _setting,
        purpose=purpose,
        cuda=cuda,
        cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
        mps=bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        cpu_bf16=cpu_has_bf16(),
    )


def torch_dtype(name: str):
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]
