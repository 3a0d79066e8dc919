"""What the CPU may use, read from its flags and the environment's caps; the caps checked to take effect in
PyTorch's libraries (CI runs the numerical tests a second time under them: ``make test-avx2``)."""

import os
import subprocess
import sys

import pytest

from latentatlas import hardware
from latentatlas.train import pick_precision

ZEN4 = "fpu avx2 avx512f avx512_vnni avx512_bf16"
SAPPHIRE_RAPIDS = "fpu avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile"
ALDER_LAKE = "fpu avx2 avx_vnni"


def cpuinfo(tmp_path, flags: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\n")
    return str(path)


@pytest.mark.parametrize("flags, environ, usable", [
    (ZEN4, {}, {"AVX2", "AVX-512", "VNNI", "AVX512-BF16"}),
    (ZEN4, hardware.AVX2_ONLY, {"AVX2"}),
    (SAPPHIRE_RAPIDS, {}, {"AVX2", "AVX-512", "VNNI", "AVX512-BF16", "AMX"}),
    (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, {"AVX2", "AVX-512", "VNNI", "AVX512-BF16"}),
    (SAPPHIRE_RAPIDS, {"ATEN_CPU_CAPABILITY": "avx2"}, {"AVX2"}),  # ATen's own kernels capped: no AVX-512 at all
    (ALDER_LAKE, {}, {"AVX2", "VNNI"}),
    (ALDER_LAKE, hardware.AVX2_ONLY, {"AVX2"}),  # AVX-VNNI needs oneDNN's AVX2_VNNI
    ("fpu sse4_2", {}, set()),
])
def test_usable_instructions_are_the_cpus_less_the_caps(tmp_path, flags, environ, usable):
    got = hardware.features(cpuinfo(tmp_path, flags), environ)
    assert {name for name, ok in got.items() if ok} == usable
    assert hardware.native_bf16(cpuinfo(tmp_path, flags), environ) == bool({"AVX512-BF16", "AMX"} & usable)


def test_no_cpuinfo_means_nothing_claimed(tmp_path):
    assert not any(hardware.features(str(tmp_path / "missing"), {}).values())
    assert hardware.cpu_model(str(tmp_path / "missing"))  # the platform's name instead, never empty


def test_the_header_names_the_cpu_the_caps_and_the_precision(monkeypatch):
    monkeypatch.setattr(os, "environ", {**os.environ, **hardware.AVX2_ONLY})
    line = hardware.header("fp32")
    assert line.startswith(hardware.cpu_model() + ": ") and "fp32" in line and "threads" in line
    assert "restricted by ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2" in line
    assert hardware.describe("fp32")["restricted"] == hardware.AVX2_ONLY


PROBE = """
import torch
print("aten", torch.backends.cpu.get_cpu_capability())
a = torch.randn(64, 64)
a @ a
b = torch.ones(64, 64, dtype=torch.int8)
torch._int_mm(b, b)  # oneDNN computes it, and reports the ISA it dispatches to
"""


def probe(caps: dict) -> tuple[str, str, str]:
    """(ATen's capability, oneDNN's ISA line, MKL's first line) of a fresh process under ``caps``."""
    env = {**{k: v for k, v in os.environ.items() if k not in hardware.AVX2_ONLY}, **caps,
           "ONEDNN_VERBOSE": "1", "MKL_VERBOSE": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout.splitlines()
    aten = next(line.split()[1] for line in out if line.startswith("aten "))
    isa = next(line for line in out if line.startswith("onednn_verbose") and ",isa:" in line)
    mkl = next(line for line in out if line.startswith("MKL_VERBOSE") and "oneMKL" in line)
    return aten, isa, mkl


def test_each_cap_takes_effect_in_pytorchs_libraries():
    """The AVX2 restriction reaches ATen (its dispatch), oneDNN (its ISA line) and MKL (where MKL names one)."""
    aten, isa, mkl = probe(hardware.AVX2_ONLY)
    assert aten == "AVX2"
    assert isa.endswith("isa:Intel AVX2"), isa
    # MKL's first verbose line names the instruction set on Intel CPUs ("... Intel(R) AVX2 ... enabled
    # processors"); on AMD it names none, and MKL there has no AVX-512 path to cap.
    if "enabled processors" in mkl:
        assert "AVX2" in mkl and "AVX-512" not in mkl, mkl
    if hardware.features(environ={})["AVX-512"]:  # and on an AVX-512 CPU, without the caps, they are not AVX2
        aten, isa, _ = probe({})
        assert aten == "AVX512" and not isa.endswith("isa:Intel AVX2"), isa


@pytest.mark.skipif(not hardware.restrictions(), reason="runs under the AVX2 restriction (make test-avx2)")
def test_the_restricted_run_is_restricted():
    import torch

    assert torch.backends.cpu.get_cpu_capability() in ("AVX2", "DEFAULT")
    assert pick_precision("auto", "cpu") == "fp32"  # as on an AVX2-only CPU


def test_every_benchmark_script_names_the_machine():
    """Each script in benchmarks/ prints the header (and its JSON records hardware.describe or bench's machine)."""
    from pathlib import Path

    folder = Path(__file__).parent.parent / "benchmarks"
    scripts = [p for p in folder.glob("*.py") if "__main__" in p.read_text()]
    assert len(scripts) >= 10
    silent = [p.name for p in scripts if "hardware.header(" not in p.read_text()]
    assert not silent, f"benchmarks that do not say what they ran on: {silent}"
    writers = [p for p in scripts if any(w in p.read_text() for w in ("json.dump", "atomic_write_json"))]
    unrecorded = [p.name for p in writers if "hardware.describe(" not in p.read_text()]
    assert not unrecorded, f"benchmarks whose JSON does not record the machine: {unrecorded}"
