"""The estimate's CPU rungs on a target: left out where the runtime would leave them out, else priced from the
profile with the instruction sets it assumed named (packager.estimate.price.cpurungs)."""

from __future__ import annotations

from types import SimpleNamespace

from packager.estimate.price.cpurungs import assumption, left_out, rung_notes
from packager.estimate.price.hardware import get_target
from runtime.manifest import Variant

FP32 = Variant("fp32", "m/fp32.onnx")
INT8 = Variant("int8", "m/int8-dynamic.onnx", precision="int8", value_factor=0.995)
BF16 = Variant("bf16", "m/fp32.onnx", precision="bf16", backend="openvino")
OV32 = Variant("ov32", "m/fp32.onnx", backend="openvino")
MEMBER = SimpleNamespace(name="enc", variants=(FP32, INT8, BF16, OV32))


def profile(isa: str | None) -> SimpleNamespace:
    return SimpleNamespace(fingerprint=SimpleNamespace(cpu_isa=isa, cpu_model="Intel(R) Xeon(R) Processor"))


def test_on_kaggles_cpu_int8_is_priced_naming_the_vnni_it_was_measured_with_and_the_avx2_it_will_have():
    cpu = get_target("cpu")
    note = assumption(MEMBER, INT8, cpu, profile("amx_int8,avx512_bf16,avx512_vnni,avx_vnni"))
    assert note.startswith("enc/int8 (int8) priced assuming AMX-INT8, AVX-512 VNNI, AVX-VNNI as on the CPU it was "
                           "profiled on (Intel(R) Xeon(R) Processor)"), note
    assert "Kaggle's CPU notebook (Intel Xeon @ 2.20GHz, AVX2 and FMA in users' reports): none of them" in note
    assert "vpmaddubsw" in note and "expect less of the measured gain" in note
    # A profile from before cpu_isa was recorded says so rather than guessing.
    assert "not recorded" in assumption(MEMBER, INT8, cpu, profile(None))
    assert left_out(INT8, cpu) == "" and left_out(OV32, cpu) == "" and left_out(FP32, cpu) == ""


def test_bf16_is_left_out_of_the_plan_on_a_cpu_without_native_bf16_and_every_cpu_rung_on_a_gpu_target():
    why = left_out(BF16, get_target("cpu"))
    assert "native bf16" in why and "AMX-BF16, AVX-512 BF16" in why, why
    assert "GPU run" in left_out(INT8, get_target("t4x2")) and left_out(FP32, get_target("t4x2")) == ""
    notes = rung_notes([MEMBER], get_target("cpu"), profile("avx512_vnni"))
    assert [n.split(" ")[0] for n in notes] == ["enc/int8", "enc/bf16", "enc/ov32"], notes
    assert "enc/bf16 (bf16) left out of the plan" in notes[1] and "as fp32 work" in notes[2]
