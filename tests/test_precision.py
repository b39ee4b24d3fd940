"""The number format open-weights models use: chosen from the hardware, overridable, checked at the door."""

from __future__ import annotations

import pytest

from emotune import ConfigError
from emotune.local.trainers import precision

HW = {"cuda": False, "cuda_bf16": False, "mps": False, "cpu_bf16": False}


@pytest.mark.parametrize(
    ("hardware", "training", "serving"),
    [
        ({}, "float32", "float32"),
        (
            {"cpu_bf16": True},
            "bfloat16",
            "float32",
        ),  # measured: bf16 answers were no faster on the CPU
        ({"cuda": True, "cuda_bf16": True}, "bfloat16", "bfloat16"),
        ({"cuda": True}, "float16", "float16"),
        ({"mps": True}, "float16", "float16"),
    ],
)
def test_auto_takes_bf16_only_where_the_hardware_computes_it_fast(hardware, training, serving):
    assert precision.resolve("auto", purpose="training", **(HW | hardware))[0] == training
    assert precision.resolve("auto", purpose="serving", **(HW | hardware))[0] == serving


def test_a_named_dtype_wins_over_the_hardware():
    chosen = precision.resolve("bfloat16", purpose="serving", **(HW | {"cpu_bf16": True}))
    assert chosen == ("bfloat16", "asked for")


def test_the_cpu_flags_that_mean_native_bf16():
    assert precision.cpu_has_bf16("flags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    assert precision.cpu_has_bf16("flags\t\t: fpu amx_bf16\n")
    assert not precision.cpu_has_bf16("flags\t\t: fpu sse avx2 avx512f\n")


def test_an_unknown_dtype_is_refused_before_any_model_loads():
    with pytest.raises(ConfigError, match="dtype must be one of auto, bfloat16, float16, float32"):
        precision.configure("int4")
    precision.configure("auto")
