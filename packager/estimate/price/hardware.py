"""Peak compute and bandwidth of the machines a Kaggle notebook can get.

GPU figures are dense (no sparsity) datasheet peaks, per device; each figure
names its source. CPU figures are estimated as ``cores x GHz x FLOP/cycle``
with one FMA port assumed (AVX-512: 32 fp32 FLOP/cycle, AVX2+FMA: 16,
otherwise 8) and ``_CPU_BW_PER_CORE`` of memory bandwidth per core capped at
``_CPU_BW_CAP``: rough, and marked low confidence. ``local`` is the machine
at hand, detected; torch is imported lazily and only to describe a GPU.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from packager.estimate.measure import machine
from runtime.errors import SpecError
from runtime.profile import Fingerprint

GB = 1e9
#: Host clock of a Kaggle notebook: "Intel(R) Xeon(R) CPU @ 2.20GHz" in users' reports.
KAGGLE_HOST_MHZ = 2200.0
_CPU_BW_PER_CORE = 10 * GB  # a DDR4/DDR5 channel share a core can stream, roughly
_CPU_BW_CAP = 40 * GB
_KAGGLE_RAM = 30 * GB  # "about 30 GB" (KAGGLE.md); varies by accelerator
_KAGGLE_CORES = 4
_PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Hardware:
    """One target machine. Compute and bandwidth figures are per device.

    Attributes:
        key: Catalog key (``"t4x2"``, ``"cpu"``, ``"local"``...).
        name: Human-readable name.
        kind: ``"gpu"`` or ``"cpu"``.
        devices: Number of devices (GPUs; 1 for a CPU, whose cores are in the peaks).
        fp32_flops: Peak fp32 FLOP/s per device.
        fp16_flops: Peak fp16 FLOP/s per device (tensor cores where present).
        bf16: Whether bf16 runs at fp16 speed (False on T4, P100 and most CPUs).
        bandwidth: Device memory bandwidth in bytes/s.
        memory_bytes: Device memory per device (host RAM for a CPU).
        host_ram_bytes: Host RAM of the machine.
        host_cores: Host CPU cores available.
        compute_capability: CUDA compute capability, None for a CPU.
        host_link: Host-to-device bandwidth in bytes/s (PCIe; inf for a CPU).
        confidence: ``"high"``, ``"medium"`` or ``"low"``: how much the figures hold.
        sources: Figure name -> where it comes from.
        device_name: The device model, to tell "same device" apart from "same kind".
    """

    key: str
    name: str
    kind: str
    devices: int
    fp32_flops: float
    fp16_flops: float
    bf16: bool
    bandwidth: float
    memory_bytes: float
    host_ram_bytes: float
    host_cores: int
    compute_capability: tuple[int, int] | None
    host_link: float
    confidence: str
    sources: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    device_name: str = ""

    def peak_flops(self, precision: str = "fp32") -> float:
        """Peak FLOP/s of one device at ``precision`` (bf16 without support runs as fp32).

        Raises:
            SpecError: ``precision`` is not one of fp32, fp16, bf16.
        """
        check_precision(precision)
        if precision == "fp16" or (precision == "bf16" and self.bf16):
            return self.fp16_flops
        return self.fp32_flops


def check_precision(precision: str) -> str:
    """Return ``precision`` if known, else raise :class:`SpecError` listing the known ones."""
    if precision not in _PRECISIONS:
        raise SpecError(f"unknown precision {precision!r}; expected one of {', '.join(_PRECISIONS)}")
    return precision


def _gpu(key: str, name: str, devices: int, fp32: float, fp16: float, bf16: bool, bw: float,
         mem_gb: float, cc: tuple[int, int], link: float, source: str, confidence: str = "high",
         link_source: str = "PCIe Gen3 x16: 15.75 GB/s theoretical, ~12 GB/s in practice",
         ) -> Hardware:
    return Hardware(
        key=key, name=name, kind="gpu", devices=devices, fp32_flops=fp32 * 1e12,
        fp16_flops=fp16 * 1e12, bf16=bf16, bandwidth=bw * GB, memory_bytes=mem_gb * GB,
        host_ram_bytes=_KAGGLE_RAM, host_cores=_KAGGLE_CORES, compute_capability=cc,
        host_link=link * GB, confidence=confidence, device_name=name.split(" x")[0],
        sources={
            "fp32_flops": source, "fp16_flops": source, "bf16": source, "bandwidth": source,
            "memory_bytes": source, "compute_capability": "NVIDIA CUDA GPUs list "
            "(https://developer.nvidia.com/cuda-gpus)", "host_link": link_source,
            "host_ram_bytes": "Kaggle notebook docs / KAGGLE.md: about 30 GB, uncertain",
            "host_cores": "Kaggle notebook docs / KAGGLE.md: about 4 cores, uncertain",
        },
    )


_T4 = ("NVIDIA T4 Tensor Core GPU datasheet (https://www.nvidia.com/content/dam/en-zz/"
       "Solutions/Data-Center/tesla-t4/t4-tensor-core-datasheet-951643.pdf)")
_P100 = ("NVIDIA Tesla P100 PCIe datasheet (https://images.nvidia.com/content/tesla/pdf/"
         "nvidia-tesla-p100-PCIe-datasheet.pdf)")
_L4 = "NVIDIA L4 Tensor Core GPU datasheet (https://www.nvidia.com/en-us/data-center/l4/)"
_A100 = ("NVIDIA A100 Tensor Core GPU datasheet (https://www.nvidia.com/en-us/data-center/a100/);"
         " Kaggle's variant (40/80 GB, 1.6-2.0 TB/s) is unknown: the lower figures are used")
_H100 = ("NVIDIA H100 Tensor Core GPU datasheet, SXM (https://www.nvidia.com/en-us/data-center/"
         "h100/); a PCIe H100 is slower (51 fp32, 756 fp16 TFLOP/s, 2.0 TB/s)")
_H200 = "NVIDIA H200 Tensor Core GPU datasheet (https://www.nvidia.com/en-us/data-center/h200/)"
_RTXPRO6000 = ("NVIDIA RTX PRO 6000 Blackwell, as announced at GTC 2025 (reported by VideoCardz, gpu.name): 96 GB "
               "GDDR7, 1,792 GB/s, up to 125 fp32 TFLOP/s, 4,000 FP4 sparse TOPS (about 500 fp16 dense); figures "
               "of the Workstation Edition: Kaggle's variant (Server Edition?) and its clocks are unknown")
_GEN4 = "PCIe Gen4 x16: 31.5 GB/s theoretical, ~25 GB/s in practice"
_GEN5 = "PCIe Gen5 x16: 63 GB/s theoretical, ~50 GB/s in practice"

_GPUS: dict[str, Hardware] = {
    "t4x2": _gpu("t4x2", "NVIDIA T4 x2", 2, 8.1, 65, False, 320, 16, (7, 5), 12, _T4),
    "p100": _gpu("p100", "NVIDIA P100", 1, 9.3, 18.7, False, 732, 16, (6, 0), 12, _P100,
                 confidence="medium"),  # current torch/ORT builds lack sm_60 kernels
    "l4": _gpu("l4", "NVIDIA L4", 1, 30.3, 121, True, 300, 24, (8, 9), 25, _L4,
               link_source=_GEN4),
    "l4x4": _gpu("l4x4", "NVIDIA L4 x4", 4, 30.3, 121, True, 300, 24, (8, 9), 25, _L4,
                 link_source=_GEN4),
    "a100": _gpu("a100", "NVIDIA A100", 1, 19.5, 312, True, 1555, 40, (8, 0), 25, _A100,
                 confidence="medium", link_source=_GEN4),
    "h100": _gpu("h100", "NVIDIA H100", 1, 67, 989, True, 3350, 80, (9, 0), 50, _H100,
                 confidence="medium", link_source=_GEN5),
    "rtxpro6000": _gpu("rtxpro6000", "NVIDIA RTX PRO 6000", 1, 125, 500, True, 1792, 96, (12, 0), 50,
                       _RTXPRO6000, confidence="low", link_source=_GEN5),
}
# Only to describe a local GPU by name; not a Kaggle target.
_KNOWN_LOCAL_GPUS = {
    "T4": _GPUS["t4x2"], "P100": _GPUS["p100"], "L4": _GPUS["l4"], "A100": _GPUS["a100"],
    "H100": _GPUS["h100"], "RTX PRO 6000": _GPUS["rtxpro6000"],
    "H200": _gpu("h200", "NVIDIA H200", 1, 67, 989, True, 4800, 141, (9, 0), 50, _H200,
                 link_source=_GEN5),
}


def known_gpu(name: str) -> Hardware | None:
    """The catalog entry of a GPU by its device name (``"Tesla T4"``, ``"NVIDIA A100-SXM4-80GB"``).

    Matched on whole words, so an ``NVIDIA L40S`` is not taken for an L4; None
    for a GPU not in the catalog.
    """
    upper = name.upper()
    return next((hw for tag, hw in _KNOWN_LOCAL_GPUS.items() if re.search(rf"\b{tag}\b", upper)), None)


def _flops_per_cycle(flags: set[str]) -> int:
    if "avx512f" in flags:
        return 32
    if "avx2" in flags and "fma" in flags:
        return 16
    return 8


def _cpu(key: str, name: str, cores: int, mhz: float, flags: set[str], ram: float,
         source: str) -> Hardware:
    per_cycle = _flops_per_cycle(flags)
    fp32 = cores * mhz * 1e6 * per_cycle
    bw = min(cores * _CPU_BW_PER_CORE, _CPU_BW_CAP)
    # Only AVX-512 FP16 / AMX run half precision natively; elsewhere it is converted.
    fp16 = fp32 * 2 if "avx512_fp16" in flags or "amx_fp16" in flags else fp32
    estimate = (f"estimate: {cores} cores x {mhz:.0f} MHz x {per_cycle} FLOP/cycle ({source})")
    return Hardware(
        key=key, name=name, kind="cpu", devices=1, fp32_flops=fp32, fp16_flops=fp16,
        bf16="amx_bf16" in flags, bandwidth=bw, memory_bytes=ram, host_ram_bytes=ram,
        host_cores=cores, compute_capability=None, host_link=float("inf"), confidence="low",
        device_name=name,
        sources={
            "fp32_flops": estimate, "fp16_flops": estimate, "bf16": "CPU flags " + source,
            "bandwidth": f"rough: {_CPU_BW_PER_CORE / GB:.0f} GB/s per core, capped at "
            f"{_CPU_BW_CAP / GB:.0f} GB/s", "memory_bytes": "host RAM",
            "host_ram_bytes": "host RAM", "host_cores": source,
            "compute_capability": "not a GPU", "host_link": "no host-device copy",
        },
    )


# Kaggle CPU sessions report "Intel(R) Xeon(R) CPU @ 2.20GHz" with AVX2 (users' reports).
#: The Kaggle CPU notebook's instruction sets as users report them: AVX2 and FMA; no AVX-512, VNNI or bf16 known.
KAGGLE_CPU_FLAGS = frozenset({"avx2", "fma"})
_KAGGLE_CPU = _cpu("cpu", "Kaggle CPU notebook", _KAGGLE_CORES, KAGGLE_HOST_MHZ, set(KAGGLE_CPU_FLAGS),
                   _KAGGLE_RAM, "Kaggle notebook docs / KAGGLE.md and users' reports; uncertain")
TARGETS: tuple[str, ...] = (*_GPUS, "cpu", "local")


def detect_local(use_gpu: bool | None = None) -> Hardware:
    """Describe the machine at hand as the ``local`` target.

    Args:
        use_gpu: Describe its GPU (True), its CPU (False), or the GPU when one is
            visible to torch (None). The measured times must come from that device.

    Returns:
        A :class:`Hardware` with key ``"local"``; a GPU not in the built-in table is
        estimated from its SM count (128 fp32 lanes x 2 x 1.5 GHz) at low confidence.
    """
    model, mhz, flags = machine.parse_cpuinfo(machine.read_cpuinfo())
    cores, ram = machine.local_cores(), machine.host_ram()
    gpus = machine.cuda_devices() if use_gpu is not False else []
    if not gpus:
        cpu = _cpu("local", model or "local CPU", cores, machine.cpu_mhz(mhz), flags, ram,
                   "/proc/cpuinfo and psutil on this machine")
        return cpu
    gpu = gpus[0]
    name = str(gpu["name"])
    known = known_gpu(name)
    if known is None:
        fp32 = float(gpu["sms"]) * 128 * 2 * 1.5e9  # type: ignore[arg-type]
        guess = "guess from SM count; unknown GPU"
        known = Hardware(
            key="local", name=name, kind="gpu", devices=1, fp32_flops=fp32,
            fp16_flops=fp32 * 4, bf16=gpu["capability"] >= (8, 0),  # type: ignore[operator]
            bandwidth=500 * GB, memory_bytes=float(gpu["memory_bytes"]),  # type: ignore[arg-type]
            host_ram_bytes=ram, host_cores=cores, compute_capability=None, host_link=12 * GB,
            confidence="low", device_name=name,
            sources=dict.fromkeys(("fp32_flops", "fp16_flops", "bandwidth"), guess),
        )
    # device_name stays the catalog's, so a local T4 counts as the same device as t4x2's.
    return replace(
        known, key="local", name=name, devices=1, host_ram_bytes=ram, host_cores=cores,
        memory_bytes=float(gpu["memory_bytes"]),  # type: ignore[arg-type]
        compute_capability=gpu["capability"],  # type: ignore[arg-type]
    )


def from_fingerprint(fp: Fingerprint) -> Hardware:
    """The machine a profile was measured on, rebuilt from its fingerprint (key ``"profiled"``).

    A GPU profile (``fp.device == "gpu"``) takes the catalog entry of its
    first GPU (:func:`known_gpu`), else the L4's figures at low confidence; a
    CPU profile is estimated as :func:`detect_local` estimates this machine's
    CPU, from the fingerprint's cores, clock and SIMD level.
    """
    if (fp.device or "cpu") == "gpu" and fp.gpus:
        name = fp.gpus[0].name or ""
        known = known_gpu(name)
        if known is not None:
            return replace(known, key="profiled", name=name, devices=1)
        return replace(_GPUS["l4"], key="profiled", name=name, devices=1, confidence="low", device_name=name)
    simd = fp.cpu_simd or "none"
    flags = {simd}
    # Profiles from before "cpu_fma" was recorded: every AVX2 / AVX-512 CPU has FMA.
    if fp.cpu_fma if fp.cpu_fma is not None else simd in ("avx2", "avx512f"):
        flags.add("fma")
    return _cpu("profiled", fp.cpu_model or "profiled CPU", int(fp.cpu_threads or 1),
                float(fp.cpu_mhz or KAGGLE_HOST_MHZ), flags, float(fp.host_ram_bytes or _KAGGLE_RAM),
                "the profile's fingerprint")


def get_target(name: str) -> Hardware:
    """Return the catalog entry ``name`` (``"local"`` is detected on each call).

    Raises:
        SpecError: ``name`` is not a known target; the message lists the known ones.
    """
    key = name.strip().lower()
    if key == "local":
        return detect_local()
    if key == "cpu":
        return _KAGGLE_CPU
    if key in _GPUS:
        return _GPUS[key]
    raise SpecError(f"unknown hardware target {name!r}; expected one of {', '.join(TARGETS)}")


__all__ = [
    "GB",
    "KAGGLE_HOST_MHZ",
    "KAGGLE_CPU_FLAGS",
    "TARGETS",
    "Hardware",
    "check_precision",
    "detect_local",
    "from_fingerprint",
    "get_target",
    "known_gpu",
]
