"""What this CPU computes natively, as PyTorch's libraries will use it: the instruction sets Linux reports, less what
the environment restricts (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``).

Two users: ``--precision auto`` (bf16 only where it is native and not restricted away), and every benchmark, which
names the machine it measured (`describe`, `header`), since a figure taken on an AMX Xeon says little about an AVX2
laptop.
"""

from __future__ import annotations

import os
import platform

# The three switches that make a CPU with AVX-512 behave like the AVX2-only CPUs most users have: ATen's own
# vectorised kernels, oneDNN (bf16 / int8 matrix products, convolutions) and MKL (float32 / float64 BLAS).
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}

# oneDNN's ISA names in increasing order (oneDNN's dnnl_cpu_isa_t); a cap lets oneDNN use its own and those before.
_ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
                "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX", "AVX512_CORE_AMX",
                "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16")
# What a benchmark's reader needs: label -> the (Linux flag, least oneDNN cap that uses it) pairs that give it.
_FEATURES = {"AVX2": (("avx2", "AVX2"),),
             "AVX-512": (("avx512f", "AVX512_CORE"),),
             "VNNI": (("avx_vnni", "AVX2_VNNI"), ("avx512_vnni", "AVX512_CORE_VNNI")),
             "AVX512-BF16": (("avx512_bf16", "AVX512_CORE_BF16"),),
             "AMX": (("amx_bf16", "AVX512_CORE_AMX"), ("amx_int8", "AVX512_CORE_AMX"))}


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's instruction-set flags as Linux reports them; empty where there is no /proc/cpuinfo (macOS, Arm)."""
    return frozenset(_cpuinfo_field("flags", cpuinfo).split())


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or platform.machine()


def features(cpuinfo: str = "/proc/cpuinfo", environ=None) -> dict[str, bool]:
    """{AVX2, AVX-512, VNNI, AVX512-BF16, AMX: usable}: present on the CPU and not capped by the environment.

    The AVX-512 family counts only where both ATen and oneDNN may use it (a cap on either is how a machine is made
    to behave like an AVX2 one); VNNI as AVX-VNNI needs only oneDNN's ``AVX2_VNNI``.
    """
    environ = os.environ if environ is None else environ
    flags = cpu_flags(cpuinfo)
    cap = _onednn_cap(environ)
    aten_512 = environ.get("ATEN_CPU_CAPABILITY", "").strip().lower() not in ("avx2", "default")

    def usable(flag: str, needs: str) -> bool:
        return (flag in flags and cap >= _ONEDNN_ISAS.index(needs)
                and (aten_512 or not needs.startswith("AVX512")))

    return {label: any(usable(*pair) for pair in pairs) for label, pairs in _FEATURES.items()}


def native_bf16(cpuinfo: str = "/proc/cpuinfo", environ=None) -> bool:
    """bf16 is computed by the CPU itself (AVX512-BF16 or AMX), and the environment leaves it usable.

    oneDNN's own check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) also says yes to plain AVX-512 CPUs, which
    only emulate bf16; and PyTorch has no public check of the instructions themselves.
    """
    f = features(cpuinfo, environ)
    return f["AVX512-BF16"] or f["AMX"]


def restrictions(environ=None) -> dict[str, str]:
    """The instruction-set caps set in the environment (empty: the CPU as it is)."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in AVX2_ONLY if environ.get(name)}


def describe(precision: str = "auto") -> dict:
    """The machine as a benchmark's JSON records it; ``precision`` "auto" is recorded as what it resolves to here."""
    import torch

    if precision == "auto":
        precision = "bf16" if native_bf16() else "fp32"

    f = features()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "instructions": [name for name, usable in f.items() if usable],
            "instructions_present": [name for name, usable in features(environ={}).items() if usable],
            "aten_capability": torch.backends.cpu.get_cpu_capability(), "restricted": restrictions(),
            "precision": precision, "torch": torch.__version__, "load": list(os.getloadavg())}


def header(precision: str = "auto") -> str:
    """One line naming the CPU, what it may use here, the threads and the precision, for a benchmark's output."""
    return format_machine(describe(precision))


def format_machine(d: dict) -> str:
    """The header line of a recorded :func:`describe` (also one read back from a benchmark's JSON)."""
    used = ", ".join(d["instructions"]) or "none of AVX2 / AVX-512 / VNNI / bf16 / AMX"
    present = set(d["instructions_present"]) - set(d["instructions"])
    caps = f"; restricted by {' '.join(f'{k}={v}' for k, v in d['restricted'].items())}" if d["restricted"] else ""
    if present:
        caps += f" (present but unused: {', '.join(sorted(present))})"
    load = ", ".join(f"{v:.2f}" for v in d["load"])
    gpu = f"; GPU {d['gpu']}" if d.get("gpu") else ""
    return (f"{d['cpu']}: {used}{caps}; ATen {d['aten_capability']}; {d['threads']} threads, {d['precision']}{gpu}; "
            f"torch {d['torch']}; load average {load}")


def _onednn_cap(environ) -> int:
    """Index in _ONEDNN_ISAS of the highest ISA oneDNN may use (its last when uncapped or the name is unknown)."""
    cap = environ.get("ONEDNN_MAX_CPU_ISA", environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    return _ONEDNN_ISAS.index(cap) if cap in _ONEDNN_ISAS else len(_ONEDNN_ISAS) - 1


def _cpuinfo_field(name: str, cpuinfo: str) -> str:
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""
