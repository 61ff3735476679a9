"""Memory readings: psutil and cgroup RAM, NVML GPU memory, peaks and the low-RAM signal."""

from __future__ import annotations

import threading
import time

import pytest

from runtime.execute import memory
from runtime.execute.memory import MemoryMonitor, MemorySnapshot, cgroup_memory, peak_rss, snapshot

pytestmark = pytest.mark.timeout(30)


def test_snapshot_reads_host_memory():
    s = snapshot(device_id=None)
    assert s.rss and s.rss > 10 << 20
    assert s.ram_limit and s.ram_used and 0 < s.ram_used < s.ram_limit
    assert s.ram_free == s.ram_limit - s.ram_used
    assert s.gpu_used is None and s.gpu_total is None
    assert peak_rss() >= s.rss // 2


@pytest.mark.parametrize(("limit", "used", "expected"), [
    ("1073741824\n", "536870912\n", (1 << 30, 1 << 29)),
    ("max\n", "536870912\n", (None, 1 << 29)),
    (str(1 << 62), "5", (None, 5)),
])
def test_cgroup_v2_limits(tmp_path, monkeypatch, limit, used, expected):
    (tmp_path / "memory.max").write_text(limit)
    (tmp_path / "memory.current").write_text(used)
    monkeypatch.setattr(memory, "CGROUP_FILES", ((tmp_path / "memory.max", tmp_path / "memory.current"),))
    assert cgroup_memory() == expected


def test_a_container_limit_below_the_host_wins(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text(str(1 << 30))
    (tmp_path / "memory.current").write_text(str(1000 << 20))
    monkeypatch.setattr(memory, "CGROUP_FILES", ((tmp_path / "memory.max", tmp_path / "memory.current"),))
    s = snapshot(device_id=None)
    assert (s.ram_limit, s.ram_used) == (1 << 30, 1000 << 20)
    mon = MemoryMonitor(device_id=None)
    assert mon.low_on_ram()  # 24 MiB free < 256 MiB
    monkeypatch.setattr(memory, "CGROUP_FILES", ())
    assert not MemoryMonitor(device_id=None).low_on_ram()


def _sampler_running() -> bool:
    return any(t.name == "ninefit-memory" for t in threading.enumerate())


def test_monitor_keeps_peaks_in_the_background():
    with MemoryMonitor(device_id=None, interval_s=0.01) as mon:
        assert _sampler_running()
        block = bytearray(64 << 20)  # noqa: F841 - held while sampled
        time.sleep(0.1)
        del block
    assert mon.peak_rss > 64 << 20
    assert mon.peak_ram_used and mon.last is not None
    assert not _sampler_running()  # stopped with the run


def test_snapshot_without_nvml_has_no_gpu(monkeypatch):
    import runtime.gpu

    monkeypatch.setattr(runtime.gpu, "gpu_info", lambda index=0: None)
    assert snapshot(device_id=0).gpu_used is None
    assert MemorySnapshot(None, None, None, None, None).ram_free is None


@pytest.mark.gpu
def test_gpu_memory_is_read_through_nvml():
    pytest.importorskip("pynvml", reason="needs nvidia-ml-py (the [gpu] extra) to read GPU memory")
    s = snapshot(device_id=0)
    assert s.gpu_total and s.gpu_used is not None and 0 <= s.gpu_used <= s.gpu_total


def test_a_recent_sample_is_reused_when_asked_and_an_old_one_never(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text(str(1 << 30))
    (tmp_path / "memory.current").write_text(str(1000 << 20))
    monkeypatch.setattr(memory, "CGROUP_FILES", ((tmp_path / "memory.max", tmp_path / "memory.current"),))
    mon = MemoryMonitor(device_id=None)
    assert mon.low_on_ram(max_age_s=60)  # nothing sampled yet: samples now (24 MiB free)
    (tmp_path / "memory.current").write_text(str(10 << 20))  # RAM freed
    assert mon.low_on_ram(max_age_s=60)  # the minute-old reading stands
    assert not mon.low_on_ram()  # a fresh reading by default
