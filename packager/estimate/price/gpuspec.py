"""What one GPU can do at each precision: the peaks the fitted GPU model (:mod:`.gpumodel`) divides by.

Every figure is a dense (no sparsity) datasheet peak of the part named, read from NVIDIA's datasheet
of that part (the sources below); the datasheets print the tensor-core figures *with* 2:4 sparsity
and say the dense ones are half, which is what is kept here. The table's rows name the exact part
(``gpu_variant``: an A100 PCIe 40GB, an H100 PCIe 80GB...), and a PCIe H100 is a third slower than an
SXM one, so each part has its own entry; a Kaggle target maps to the part the catalog
(:mod:`.hardware`) describes.

A run's precision becomes the precision its matrix work runs at (:func:`compute_precision`): fp32 on
a GPU with TF32 tensor cores (Ampere and later) runs at the TF32 peak, because TensorRT and
onnxruntime's CUDA execution provider both allow TF32 for fp32 matrix products and convolutions by
default; on a T4 (Turing, no TF32) fp32 runs on the CUDA cores; bf16 runs at the fp16 peak where
the GPU has bf16 tensor cores, as fp32 where it has none.

Clocks: the peaks are at the boost clock the datasheet states. A 70 W T4 and a 72 W L4 cannot hold
their boost clock under sustained tensor-core load; how far below it they run is not stated in any
source this table cites, so it is not assumed here: the fitted GPU model gives each GPU its own
compute factor, fitted on that GPU's published figures, and reports it as the sustained clock it
implies where a cited source states the part's top clock (:attr:`DeviceSpec.boost_mhz` times the factor,
relative to the A100's; see :mod:`.gpufit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.errors import SpecError

T = 1e12
GB = 1e9
#: Precisions of the matrix work, in the order the peaks are listed.
COMPUTE_PRECISIONS = ("fp32", "tf32", "fp16", "int8", "fp8")

_T4_SHEET = ("NVIDIA T4 Tensor Core GPU datasheet (https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/"
             "tesla-t4/t4-tensor-core-datasheet-951643.pdf): FP32 8.1 TFLOPS, mixed FP16/FP32 65 TFLOPS, INT8 130 "
             "TOPS, 320 GB/s, 70 W")
_L4_SHEET = ("NVIDIA L4 Tensor Core GPU datasheet (https://www.nvidia.com/en-us/data-center/l4/): FP32 30.3 TFLOPS, "
             "TF32 120, FP16/BF16 242, FP8 485, INT8 485 TOPS (with sparsity; dense half), 300 GB/s, 72 W")
_A100_SHEET = ("NVIDIA A100 Tensor Core GPU datasheet (https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/"
               "a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf): FP32 19.5 TFLOPS, TF32 156, FP16/BF16 "
               "312, INT8 624 TOPS (dense); 40GB 1,555 GB/s, 80GB PCIe 1,935 GB/s, 80GB SXM 2,039 GB/s")
#: Where a part's top graphics clock is stated (the clock its datasheet peaks are at).
_T4_CLOCK = ("1,590 MHz: the T4's top graphics clock, as the FasterTransformer BERT guide ran it ('T4 with mclk "
             "5000MHz, pclk 1590MHz', gpu_figures.toml [sources.ft_bert_guide])")
_A100_CLOCK = ("1,410 MHz: the A100's top graphics clock, as the FasterTransformer BERT guide ran it ('A100 with mclk "
               "1593MHz, pclk 1410MHz', gpu_figures.toml [sources.ft_bert_guide])")
_H100_SHEET = ("NVIDIA H100 Tensor Core GPU datasheet (https://www.nvidia.com/en-us/data-center/h100/): SXM FP32 67 "
               "TFLOPS, TF32 989, FP16/BF16 1,979, FP8 3,958, INT8 3,958 TOPS; PCIe FP32 51, TF32 756, FP16/BF16 "
               "1,513, FP8 3,026, INT8 3,026 (with sparsity; dense half); SXM 3,350 GB/s, PCIe 2,000 GB/s")


@dataclass(frozen=True)
class DeviceSpec:
    """One GPU part: its dense peaks per compute precision (FLOP/s), memory bandwidth (bytes/s) and clocks.

    ``family`` is the table's ``gpu`` (``T4``, ``L4``, ``A100``, ``H100``): parts of one family share the fitted
    efficiencies; ``peaks`` lacks a precision the part has no tensor cores for (TF32 on a T4, FP8 on an A100).
    """

    key: str
    family: str
    name: str
    peaks: dict[str, float] = field(hash=False, compare=False)
    bandwidth: float = 0.0
    boost_mhz: float = 0.0  # the clock the peaks are at, where a cited source states it (0: not stated)
    tdp_w: float = 0.0
    source: str = ""
    clock_source: str = ""

    def peak(self, precision: str) -> float:
        """Dense peak FLOP/s (OP/s for int8) of matrix work at a compute precision."""
        if precision not in self.peaks:
            raise SpecError(f"{self.name} has no {precision} tensor cores; expected one of {', '.join(self.peaks)}")
        return self.peaks[precision]


def _spec(key: str, family: str, name: str, fp32: float, tf32: float | None, fp16: float, int8: float,
          fp8: float | None, bw: float, tdp: float, source: str, mhz: float = 0.0, clock: str = "") -> DeviceSpec:
    peaks = {"fp32": fp32 * T, "fp16": fp16 * T, "int8": int8 * T}
    if tf32:
        peaks["tf32"] = tf32 * T
    if fp8:
        peaks["fp8"] = fp8 * T
    return DeviceSpec(key, family, name, peaks, bw * GB, mhz, tdp, source, clock)


DEVICES: dict[str, DeviceSpec] = {d.key: d for d in (
    _spec("t4", "T4", "NVIDIA T4 16GB", 8.1, None, 65, 130, None, 320, 70, _T4_SHEET, 1590, _T4_CLOCK),
    _spec("l4", "L4", "NVIDIA L4 24GB", 30.3, 60, 121, 242.5, 242.5, 300, 72, _L4_SHEET),
    _spec("a100-40gb", "A100", "NVIDIA A100 40GB", 19.5, 156, 312, 624, None, 1555, 250, _A100_SHEET, 1410,
          _A100_CLOCK),
    _spec("a100-pcie-80gb", "A100", "NVIDIA A100 PCIe 80GB", 19.5, 156, 312, 624, None, 1935, 300, _A100_SHEET,
          1410, _A100_CLOCK),
    _spec("a100-sxm-80gb", "A100", "NVIDIA A100 SXM 80GB", 19.5, 156, 312, 624, None, 2039, 400, _A100_SHEET, 1410,
          _A100_CLOCK),
    _spec("h100-sxm", "H100", "NVIDIA H100 SXM 80GB", 67, 494.5, 989.5, 1979, 1979, 3350, 700, _H100_SHEET),
    _spec("h100-pcie", "H100", "NVIDIA H100 PCIe 80GB", 51, 378, 756.5, 1513, 1513, 2000, 350, _H100_SHEET),
)}

#: The catalog's device names (``Hardware.device_name``) and the part each is priced as: Kaggle's A100
#: variant is unknown, the catalog takes the 40GB figures; its H100 the SXM ones.
_BY_DEVICE_NAME = {"NVIDIA T4": "t4", "NVIDIA L4": "l4", "NVIDIA A100": "a100-40gb", "NVIDIA H100": "h100-sxm",
                   "NVIDIA H200": "h100-sxm"}


def device_for_figure(gpu: str, variant: str) -> DeviceSpec:
    """The part a table row was measured on, from its ``gpu`` and ``gpu_variant``.

    An A100 whose memory is not stated is taken as the 40GB part (1,555 GB/s), one of 80GB whose form factor is
    not stated as the PCIe part (1,935 GB/s, the lower of the two); an H100 is SXM unless the row says PCIe.
    """
    text = variant.upper()
    if gpu == "T4":
        return DEVICES["t4"]
    if gpu == "L4":
        return DEVICES["l4"]
    if gpu == "H100":
        return DEVICES["h100-pcie" if "PCIE" in text else "h100-sxm"]
    if gpu == "A100":
        if "80GB" not in text.replace(" ", "").replace("-", ""):
            return DEVICES["a100-40gb"]
        return DEVICES["a100-sxm-80gb" if "SXM" in text or "DGX" in text else "a100-pcie-80gb"]
    raise SpecError(f"no GPU part known for {gpu!r} ({variant!r}); expected one of T4, L4, A100, H100")


def device_for_target(device_name: str) -> DeviceSpec | None:
    """The part a catalog target (``Hardware.device_name``, e.g. ``NVIDIA T4``) is priced as; None: not one."""
    key = _BY_DEVICE_NAME.get(device_name)
    return DEVICES[key] if key else None


def compute_precision(device: DeviceSpec, precision: str) -> str:
    """The precision a run's matrix work runs at on ``device``: fp32 as TF32 where the part has TF32 tensor
    cores, bf16 as fp16 where it has bf16 ones (Ampere and later: every part here with TF32), else as fp32."""
    if precision == "fp32":
        return "tf32" if "tf32" in device.peaks else "fp32"
    if precision == "bf16":
        return "fp16" if "tf32" in device.peaks else compute_precision(device, "fp32")
    if precision not in device.peaks:
        raise SpecError(f"{device.name} has no {precision} tensor cores; expected one of {', '.join(device.peaks)}")
    return precision


__all__ = ["COMPUTE_PRECISIONS", "DEVICES", "DeviceSpec", "compute_precision", "device_for_figure",
           "device_for_target"]
