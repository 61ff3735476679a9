"""Hardware catalog, local detection, roofline translation and calibration."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from packager.estimate import (
    TARGETS,
    Calibration,
    GraphCost,
    NodeCost,
    detect_local,
    fingerprint,
    get_target,
    parse_cpuinfo,
    translate,
)
from packager.estimate.measure import machine
from packager.estimate.price import hardware
from runtime.errors import SpecError
from runtime.profile import Fingerprint

pytestmark = pytest.mark.timeout(60)

KAGGLE = ("t4x2", "p100", "l4", "l4x4", "a100", "h100", "rtxpro6000", "cpu")


def _cost(flops: float, nbytes: float, kernels: int = 10) -> GraphCost:
    nodes = tuple(NodeCost(f"n{i}", "Conv", flops / kernels, nbytes / kernels, True)
                  for i in range(kernels))
    return GraphCost(flops=flops, bytes=nbytes, weight_bytes=nbytes / 2, per_op={},
                     unknown_ops=(), unresolved=(), input_bytes=1e4, output_bytes=1e3,
                     nodes=nodes)


HEAVY = _cost(flops=2e11, nbytes=2e8)  # ~1000 FLOP/byte: compute bound everywhere


def test_catalog_sanity():
    assert set(KAGGLE) | {"local"} == set(TARGETS)
    for key in KAGGLE:
        hw = get_target(key)
        assert hw.key == key
        for figure in ("fp32_flops", "fp16_flops", "bandwidth", "host_ram_bytes"):
            assert hw.sources.get(figure), (key, figure)
        assert hw.fp32_flops > 0 and hw.bandwidth > 0 and hw.host_cores == 4
        assert hw.confidence in ("high", "medium", "low")
    t4, p100 = get_target("t4x2"), get_target("p100")
    assert not t4.bf16 and not p100.bf16 and get_target("a100").bf16
    assert t4.devices == 2 and get_target("l4x4").devices == 4
    assert t4.fp16_flops == 65e12 and t4.fp32_flops == 8.1e12 and t4.bandwidth == 320e9
    assert t4.compute_capability == (7, 5) and p100.compute_capability == (6, 0)
    assert t4.peak_flops("bf16") == t4.fp32_flops  # no bf16 tensor cores
    assert get_target("cpu").confidence == "low" and get_target("cpu").kind == "cpu"
    assert get_target(" H100 ").key == "h100"


def test_unknown_target_names_the_known_ones():
    with pytest.raises(SpecError, match="'v100'.*t4x2.*local"):
        get_target("v100")
    with pytest.raises(SpecError, match="fp8.*fp32, fp16, bf16"):
        get_target("t4x2").peak_flops("fp8")


def test_parse_cpuinfo():
    text = ("model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\ncpu MHz\t\t: 2199.998\n"
            "flags\t\t: fpu sse2 avx avx2 fma\n")
    model, mhz, flags = parse_cpuinfo(text)
    assert model == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert mhz == pytest.approx(2199.998)
    assert {"avx2", "fma"} <= flags
    assert parse_cpuinfo("model name : Xeon @ 2.50GHz\n")[1] == pytest.approx(2500.0)


def test_local_detection_on_this_machine():
    local = detect_local(use_gpu=False)
    assert local.key == "local" and local.kind == "cpu"
    assert local.fp32_flops > 1e9 and local.bandwidth > 0
    assert local.host_cores >= 1 and local.host_ram_bytes > 0
    assert local.confidence == "low" and local.sources["fp32_flops"].startswith("estimate")
    assert get_target("local").key == "local"
    info = fingerprint()
    json.dumps(info.to_dict())  # storable with a profile
    assert info.cpu_threads >= 1 and "numpy" in info.versions


@pytest.mark.parametrize("name, known", [("NVIDIA H200", True), ("Tesla T4", True),
                                         ("NVIDIA A100-SXM4-80GB", True),
                                         ("NVIDIA GeForce RTX 4090", False),
                                         ("NVIDIA L40S", False)])
def test_local_gpu_description(monkeypatch, name, known):
    fake = {"name": name, "capability": (8, 9), "memory_bytes": 24e9, "sms": 128}
    monkeypatch.setattr(machine, "cuda_devices", lambda: [fake])
    local = detect_local()
    assert local.kind == "gpu" and local.key == "local" and local.name == name
    assert local.compute_capability == (8, 9) and local.devices == 1
    assert (local.confidence != "low") == known
    assert detect_local(use_gpu=False).kind == "cpu"
    if name == "Tesla T4":  # same device model as the t4x2 target
        est = translate(0.5, HEAVY, local, get_target("t4x2"))
        assert est.seconds == pytest.approx(0.5 / 1.85) and est.confidence == "high"


def test_same_machine_returns_the_measurement():
    local = detect_local(use_gpu=False)
    for target in (local, replace(local, key="local")):
        est = translate(0.25, HEAVY, local, target)
        assert est.seconds == pytest.approx(0.25, rel=1e-9)
        assert est.low == pytest.approx(0.225) and est.high == pytest.approx(0.275)
        assert est.confidence == "high"


def test_faster_gpu_gives_a_shorter_time():
    local = detect_local(use_gpu=False)
    measured = 4 * HEAVY.flops / local.fp32_flops  # 25 % of the local peak
    times = {key: translate(measured, HEAVY, local, get_target(key), data_parallel=False)
             for key in ("p100", "l4", "h100")}
    assert times["h100"].seconds < times["l4"].seconds < times["p100"].seconds < measured
    for est in times.values():
        assert est.confidence == "low" and est.bound == "compute"
        assert est.high / est.low == pytest.approx(4.0)  # x0.5..x2 across kinds
    fp16 = translate(measured, HEAVY, local, get_target("l4"), "fp16", data_parallel=False)
    assert fp16.seconds < times["l4"].seconds


def test_multi_gpu_and_bf16_on_t4():
    local = detect_local(use_gpu=False)
    t4 = get_target("t4x2")
    one = translate(1.0, HEAVY, local, t4, "fp16", data_parallel=False)
    two = translate(1.0, HEAVY, local, t4, "fp16")
    assert one.seconds / two.seconds == pytest.approx(1.85)
    bf16 = translate(1.0, HEAVY, local, t4, "bf16")
    assert bf16.seconds > two.seconds and any("bf16" in note for note in bf16.notes)
    with pytest.raises(SpecError):
        translate(1.0, HEAVY, local, t4, "int8")


def test_same_gpu_model_scales_by_device_count():
    t4 = get_target("t4x2")
    local_t4 = replace(t4, key="local", devices=1)
    est = translate(0.5, HEAVY, local_t4, t4)
    assert est.seconds == pytest.approx(0.5 / 1.85)
    assert est.confidence == "high"


def test_small_graph_on_gpu_is_overhead_bound():
    local = detect_local(use_gpu=False)
    tiny = _cost(flops=1e3, nbytes=1e3, kernels=50)
    est = translate(1e-5, tiny, local, get_target("h100"))
    assert est.bound == "overhead" and est.seconds >= 50 * 5e-6


def test_calibration_moves_toward_actual_and_narrows():
    local = detect_local(use_gpu=False)
    est = translate(1.0, HEAVY, local, get_target("l4"))
    cal = Calibration("l4")
    assert cal.apply(est) == est and cal.factor == 1.0
    width = math.log(est.high / est.low)
    previous = width
    for _ in range(5):
        cal = cal.update(est.seconds, 3 * est.seconds)
        fixed = cal.apply(est)
        assert fixed.seconds == pytest.approx(3 * est.seconds)
        current = math.log(fixed.high / fixed.low)
        assert current < previous
        previous = current
    assert cal.count == 5 and cal.factor == pytest.approx(3.0)
    assert fixed.confidence == "high" and fixed.low < fixed.seconds < fixed.high
    noisy = Calibration("l4").update(1.0, 2.0).update(1.0, 8.0)
    assert noisy.factor == pytest.approx(4.0) and noisy.spread > 0
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    with pytest.raises(ValueError, match="actual_s"):
        cal.update(1.0, 0.0)
    with pytest.raises(ValueError, match="'t4x2'"):
        Calibration("t4x2").update(1.0, 2.0).apply(est)


@pytest.mark.gpu
def test_detect_local_reads_the_real_gpu():
    """On a CUDA machine, ``local`` is that GPU, with torch's name and compute capability."""
    import torch

    hw = detect_local()
    assert hw.kind == "gpu"
    assert hw.device_name == torch.cuda.get_device_name(0)
    assert hw.compute_capability in (None, tuple(torch.cuda.get_device_capability(0)))
    assert hw.memory_bytes > 1e9 and hw.fp32_flops > 1e12


@pytest.mark.parametrize("name, device", [("NVIDIA L4", "NVIDIA L4"), ("NVIDIA L40S", None), ("Tesla T4", "NVIDIA T4"),
                                          ("NVIDIA H200", "NVIDIA H200"), ("NVIDIA A100-SXM4-80GB", "NVIDIA A100")])
def test_a_profiled_gpu_is_matched_on_whole_words(name, device):
    """One matcher for local detection and for profiles: an L40S is not an L4."""
    from packager.estimate.price.scaling import hardware_of

    hw = hardware_of(Fingerprint.from_dict({"device": "gpu", "gpus": [{"name": name}], "cpu_model": "elsewhere",
                                            "cpu_threads": 999}))
    assert hw.key == "profiled" and hw.kind == "gpu" and hw.name == name and hw.devices == 1
    if device is None:
        assert hardware.known_gpu(name) is None and hw.confidence == "low" and hw.device_name == name
    else:
        assert hardware.known_gpu(name).device_name == device == hw.device_name and hw.confidence != "low"


def test_a_profiled_cpu_is_priced_as_the_local_one():
    """The same FLOP/cycle rule (FMA needed for AVX2's 16) as detect_local and the Kaggle CPU."""
    fp = {"device": "cpu", "cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz", "cpu_threads": 4,
          "cpu_mhz": hardware.KAGGLE_HOST_MHZ, "cpu_simd": "avx2"}
    kaggle = get_target("cpu")
    old_profile = hardware.from_fingerprint(Fingerprint.from_dict(fp))  # no "cpu_fma": AVX2 implies it
    assert old_profile.fp32_flops == kaggle.fp32_flops == 4 * 2200e6 * 16
    assert old_profile.bandwidth == kaggle.bandwidth and old_profile.confidence == "low"
    assert hardware.from_fingerprint(Fingerprint.from_dict({**fp, "cpu_fma": False})).fp32_flops == kaggle.fp32_flops / 2
    assert hardware.from_fingerprint(Fingerprint.from_dict({**fp, "cpu_simd": "avx512f"})).fp32_flops == 2 * kaggle.fp32_flops
    assert fingerprint().cpu_fma is not None
