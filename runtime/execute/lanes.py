"""Lanes: the devices (or shares of the CPU cores) a run uses at once.

A *lane* runs one plan step at a time with sessions of its own: on a GPU
machine one lane per GPU (the onnxruntime CUDA / TensorRT providers' and the
native TensorRT and torch backends' ``device_id``), on a CPU machine one lane
per share of the cores (each session with ``--threads`` intra-op threads).
:func:`runtime.schedule.planner.plan_lanes` decides what runs on which lane;
:class:`runtime.execute.executor.Executor` runs the lanes, each in a thread of its own
(onnxruntime and torch release the GIL while they compute, so the threads'
inference runs in parallel; ``benchmarks/lanes.py`` measures it).

How many lanes (:func:`choose_lanes`):

* ``--devices 0,1``: one lane per listed GPU; ``--lanes N`` on a GPU machine:
  N lanes spread over the GPUs in turn (two lanes on one GPU are two sessions
  on that device, as two processes sharing it would be).
* Default with GPUs visible: one lane per GPU.
* Default on a CPU: ``cores // threads`` lanes (``threads`` = ``--threads``,
  else 1: one core per lane), at most :data:`MAX_CPU_LANES`, and no more than
  half the free RAM allows with :data:`SESSION_RAM_FACTOR` times the largest
  model file per lane (each lane holds its own session); at most one lane per
  chunk of the largest member's grid (a lane with no chunk to take would only
  load models). A single core is one lane. Without ``--threads`` each CPU
  lane's sessions get ``cores // lanes`` threads (one lane: onnxruntime's own
  choice, as before lanes). The torch backend's CPU thread count is
  process-wide (``torch.set_num_threads``): its lanes share that setting.
* On a CPU target (``cpu_target``: the bundle was packaged for a CPU notebook,
  e.g. Kaggle's, which has 4 cores), the lanes are chosen as above from the
  cores the notebook has, and every lane, one lane too, gets an explicit
  intra-op thread count, ``--threads`` or ``cores // lanes``: onnxruntime and
  OpenVINO (``INFERENCE_NUM_THREADS``) then use exactly the notebook's cores,
  never each its own guess, and the rule (said in the run report) names them.

One reader: every lane takes its chunks' inputs from the run's one
:class:`runtime.data.pipeline.FeedPipeline` (the test table read once, image files
decoded once per run whatever the members reading them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import NinefitError
from runtime.manifest import Manifest

#: Most CPU lanes chosen by default (each lane loads every member it runs once more).
MAX_CPU_LANES = 8
#: RAM a lane's session is taken to need, as a multiple of the largest model file.
SESSION_RAM_FACTOR = 3


@dataclass(frozen=True)
class LaneSpec:
    """One lane to run: ``kind`` "gpu" (on ``device_id``) or "cpu" (with ``threads`` per session)."""

    name: str
    kind: str
    device_id: int = 0
    threads: int | None = None

    def describe(self) -> str:
        where = f"GPU {self.device_id}" if self.kind == "gpu" else "CPU"
        return f"{self.name} ({where}{f', {self.threads} thread(s) per session' if self.threads else ''})"


def parse_devices(text: str) -> tuple[int, ...]:
    """``--devices 0,1`` -> (0, 1); raises NinefitError naming what was wrong."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p.isdigit() for p in parts):
        raise NinefitError(f"--devices {text!r}: expected GPU indices separated by commas, e.g. 0,1")
    devices = tuple(int(p) for p in parts)
    if len(set(devices)) != len(devices):
        raise NinefitError(f"--devices {text!r}: each GPU may be listed once (use --lanes for two lanes on one GPU)")
    return devices


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose_lanes(*, gpus: int, cores: int, lanes: int | None = None, devices: Sequence[int] | None = None,
                 threads: int | None = None, model_bytes: int = 0, ram_free: int | None = None,
                 max_chunks: int | None = None, cpu_target: bool = False) -> tuple[list[LaneSpec], str]:
    """The lanes of a run and why (see the module's rule).

    Args:
        gpus: GPUs visible (0: a CPU run).
        cores: CPU cores usable.
        lanes: ``--lanes`` (None: the default rule).
        devices: ``--devices`` (None: every GPU).
        threads: ``--threads`` (CPU threads per session, so per lane).
        model_bytes: Largest model file of the bundle.
        ram_free: Free RAM in bytes (None: unknown).
        max_chunks: Chunks in the largest member's grid (None: unknown).
        cpu_target: The bundle's target is a CPU notebook: every lane gets an explicit thread count.

    Raises:
        NinefitError: --devices names a GPU that is not here, or --lanes < 1.
    """
    if lanes is not None and lanes < 1:
        raise NinefitError(f"--lanes {lanes}: expected a positive number of lanes")
    if devices is not None:
        if not gpus:
            raise NinefitError(f"--devices {','.join(map(str, devices))}: this machine has no GPU; "
                               "on a CPU use --lanes N (and --threads per lane)")
        bad = [d for d in devices if d >= gpus]
        if bad:
            raise NinefitError(f"--devices: GPU {', '.join(map(str, bad))} not found; this machine has {gpus} "
                               f"GPU(s), numbered 0 to {gpus - 1}")
    if gpus:
        ids = list(devices) if devices is not None else list(range(gpus))
        n = lanes or len(ids)
        specs = [LaneSpec(f"gpu{ids[i % len(ids)]}" + (f"-{i // len(ids)}" if n > len(ids) else ""), "gpu",
                          ids[i % len(ids)], threads) for i in range(n)]
        why = ("--lanes" if lanes else "--devices" if devices is not None else "one lane per visible GPU")
        return specs, why
    per = threads or 1
    if lanes:
        n, why = lanes, "--lanes"
    else:
        n = max(1, cores // per)
        why = f"{cores} core(s) / {per} thread(s) per lane"
        if n > MAX_CPU_LANES:
            n, why = MAX_CPU_LANES, f"{why}, at most {MAX_CPU_LANES}"
        if ram_free is not None and model_bytes > 0:
            fit = max(1, int(ram_free // 2 // (SESSION_RAM_FACTOR * model_bytes)))
            if fit < n:
                n, why = fit, f"{why}; RAM for {fit} lane(s) of the largest model"
        if max_chunks is not None and 0 < max_chunks < n:
            n, why = max_chunks, f"{why}; {max_chunks} chunk(s) to share"
    # --threads is each lane's; without it a lane gets its share of the cores (one lane: onnxruntime's choice,
    # except on a CPU target, where the one lane gets every core explicitly).
    share = threads or (max(1, cores // n) if n > 1 or cpu_target else None)
    if cpu_target:
        why += (f"; {share} intra-op thread(s) per lane ({'--threads' if threads else f'{cores} core(s) here / {n} lane(s)'}"
                "; onnxruntime and OpenVINO sessions)")
    return [LaneSpec(f"cpu{i}", "cpu", 0, share) for i in range(n)], why


@dataclass
class LaneLog:
    """What one lane ran, when: the steps of the run report's ``lanes``."""

    steps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, member: str, variant: str, rows: int, start: float, end: float) -> None:
        if rows or end > start:
            self.steps.append({"kind": kind, "member": member, "variant": variant, "rows": int(rows),
                               "start_s": round(start, 3), "end_s": round(end, 3)})

    @property
    def busy_s(self) -> float:
        return sum(s["end_s"] - s["start_s"] for s in self.steps)

    def report(self, spec: LaneSpec | None, name: str, run_s: float, retired: dict[str, str]) -> dict[str, Any]:
        """The lane's entry of the run report; ``busy_share`` is its busy time over the run's time."""
        return {"name": name, "kind": spec.kind if spec else "", "device_id": spec.device_id if spec else None,
                "threads": spec.threads if spec else None, "busy_s": round(self.busy_s, 3),
                "busy_share": round(self.busy_s / run_s, 3) if run_s > 0 else 0.0,
                "rows": sum(s["rows"] for s in self.steps), "steps": list(self.steps), "retired": dict(retired)}



def largest_model_bytes(root: Path, manifest: Manifest) -> int:
    """Bytes of the bundle's largest model file (0 when none is readable): what a lane's sessions are sized by."""
    sizes = [0]
    for member in manifest.members:
        for v in member.variants:
            try:
                sizes.append((Path(root) / v.file).stat().st_size)
            except OSError:
                pass
    return max(sizes)


def free_ram() -> int | None:
    """Free RAM in bytes now, as the lane rule's RAM cap reads it (None: unreadable)."""
    from runtime.execute.memory import snapshot

    try:
        return snapshot(None).ram_free
    except Exception:  # psutil / cgroup unreadable: the RAM cap is left out
        return None

__all__ = ["MAX_CPU_LANES", "SESSION_RAM_FACTOR", "free_ram", "largest_model_bytes", "LaneLog", "LaneSpec",
           "choose_lanes", "parse_devices", "usable_cores"]
