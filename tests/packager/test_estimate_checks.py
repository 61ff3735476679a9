"""The estimate's pre-flight checks: bf16 on a T4, a P100, GPU memory for the batch, RAM for the table."""

from __future__ import annotations

import pytest

from packager.estimate.estimator import EstimateOptions, estimate_bundle
from tests.fixtures.estimates import check_codes, copy_bundle, edit_manifest

HOUR = 3600.0

# -- pre-flight checks ----------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_bf16_on_t4_warns(profiled, tmp_path):
    bundle = copy_bundle(profiled, tmp_path / "bf16")

    def to_bf16(d):
        d["members"][0]["variants"][1]["precision"] = "bf16"

    edit_manifest(bundle, to_bf16)
    assert "bf16" in check_codes(estimate_bundle(bundle, EstimateOptions(target="t4x2", rows=100)))
    assert "bf16" not in check_codes(estimate_bundle(bundle, EstimateOptions(target="l4", rows=100)))
    assert "bf16" not in check_codes(estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=100)))


@pytest.mark.timeout(180)
def test_p100_warns(profiled):
    assert "sm60" in check_codes(estimate_bundle(profiled, EstimateOptions(target="p100", rows=100)))
    assert "sm60" not in check_codes(estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=100)))


@pytest.mark.timeout(180)
def test_gpu_memory_too_small_for_the_batch_warns(profiled):
    huge = estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=100, batch_size=4_000_000))
    check = next(c for c in huge.checks if c.code == "gpu-memory")
    assert "batch 4000000" in check.message and "batch_size" in check.message
    assert "gpu-memory" not in check_codes(estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=100)))
    assert "gpu-memory" not in check_codes(estimate_bundle(profiled, EstimateOptions(target="cpu", rows=100,
                                                                                batch_size=4_000_000)))


@pytest.mark.timeout(180)
def test_ram_too_small_for_the_table_warns(profiled):
    assert "ram" in check_codes(estimate_bundle(profiled, EstimateOptions(target="cpu", rows=200_000_000)))
    assert "ram" not in check_codes(estimate_bundle(profiled, EstimateOptions(target="cpu", rows=25_000)))


@pytest.mark.timeout(180)
def test_ram_beyond_the_machine_blocks_and_near_it_warns(profiled):
    def ram(rows):
        est = estimate_bundle(profiled, EstimateOptions(target="t4x2", rows=rows, time_limit_s=1000 * HOUR))
        return est, next((c for c in est.checks if c.code == "ram"), None)

    est, check = ram(200_000_000)
    assert check.level == "blocking" and est.verdict == "does not fit" and est.blocking == (check,)
    assert "[ram]" in est.reason and est.plan is not None and not est.plan.steps
    assert est.expected_s + 0 < est.available_s  # by time alone it would fit
    need = 200_000_000 / float(check.message.split("about ")[1].split(" GiB")[0])  # rows per GiB
    est, check = ram(int(need * 0.9 * 27.9))  # about 90 % of the notebook's RAM
    assert check.level == "warning" and est.verdict == "fits"
