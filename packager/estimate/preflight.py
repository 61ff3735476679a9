"""Kaggle pre-flight checks run while estimating: what will fail before it is slow.

* ``bf16``: a bf16 variant (by its declared precision or its graph's dtype)
  on a target without bf16 tensor cores (T4, P100): it runs at fp32 speed at
  best, or not at all; export fp16 instead.
* ``sm60``: the P100 is Pascal (sm_60), for which current PyTorch and
  onnxruntime-gpu builds ship no kernels.
* ``gpu-memory``: per member at its batch size, ``CUDA_CONTEXT_BYTES`` +
  weights + twice the largest node's tensors (what the arena holds around
  one node; the largest node bounds the live activations of a chain) against
  one device's memory. Warned above 90 %, with the batch size that fits (the
  runtime halves the batch on an out-of-memory error, so the run goes on,
  slower); blocking for that member when no variant fits even at batch 1.
* ``ram``: the test data as the runtime holds it (:func:`table_memory`: the
  ids and sample submission whole, the rows only chunk by chunk), the ensemble
  accumulator, the largest member's weights twice (file buffer + session) and
  ``PROCESS_BYTES``, against the notebook's RAM. Warned above 80 %; blocking
  above 100 % (the kernel kills the notebook: no submission at all).
* ``profile``: no profile, a profile measured on another machine for
  ``--target local``, synthetic rows, or windows that never settled.
"""

from __future__ import annotations

from collections.abc import Callable

from packager.estimate.price.costing import CUDA_CONTEXT_BYTES, PROCESS_BYTES, Costing
from packager.estimate.price.flops import GraphCost
from packager.estimate.price.items import Check, EstimateOptions
from runtime.data.pipeline import DEFAULT_DEPTH, chunks_ahead, feed_bytes_per_row
from runtime.data.tables import CSV_BLOCK_ROWS
from runtime.execute.checkpoint import member_grid
from runtime.manifest import Member, Variant
from runtime.progress import format_gib
from runtime.run import member_width

_GPU_SHARE = 0.9
#: Bytes per row held whole (id string, list slot, the sample submission's row) when the profile has no measurement.
_ID_BYTES_PER_ROW = 300.0
_RAM_SHARE = 0.8


def gpu_memory_need(cost: GraphCost) -> float:
    """Bytes of GPU memory one session needs for one call at the counted batch size."""
    peak = max((n.bytes for n in cost.nodes), default=0.0)
    return CUDA_CONTEXT_BYTES + cost.weight_bytes + 2 * peak


def table_memory(manifest, rows: int, row_bytes: float, ids_bytes: float = 0.0) -> float:
    """Bytes the test data holds in a run of ``rows`` rows: the ids (and sample submission) whole, the rest in chunks.

    The runtime reads the table in pieces (:mod:`runtime.data.tables`) and prepares
    at most ``DEFAULT_DEPTH`` chunks ahead of the one being inferred, fewer
    past ``AHEAD_BYTES`` (:mod:`runtime.data.pipeline`): in flight are those
    chunks' model inputs (TTA copies included) and table rows, plus one
    Parquet row group or CSV block (taken as ``CSV_BLOCK_ROWS`` rows).
    """
    ids_bytes = ids_bytes or _ID_BYTES_PER_ROW
    in_flight = 0.0
    for m in manifest.members:
        if m.text is not None or not rows:
            continue
        a, b = member_grid(rows, m, manifest.profile)[0]
        for v in m.variants:
            chunk = (b - a) * feed_bytes_per_row(m, v)
            # the chunks ahead, the one being inferred (its feeds and the batch sliced from them), its table rows
            in_flight = max(in_flight, (chunks_ahead(DEFAULT_DEPTH, chunk) + 2) * chunk + (b - a) * row_bytes)
    return rows * ids_bytes + in_flight + min(rows, CSV_BLOCK_ROWS) * row_bytes


def preflight(costing: Costing, options: EstimateOptions) -> tuple[list[Check], Callable[[Member, Variant, int], bool]]:
    """Checks for ``costing``'s bundle on its target, and a "fits GPU memory" predicate."""
    target = costing.target
    manifest = costing.manifest
    checks: list[Check] = []

    def fits_memory(member: Member, variant: Variant, batch: int) -> bool:
        if target.kind != "gpu":
            return True
        return gpu_memory_need(costing.cost(variant, batch)) <= _GPU_SHARE * target.memory_bytes

    for member in manifest.members:
        for variant in member.variants:
            dtype = costing.cost(variant, 1).dtype
            if (variant.precision == "bf16" or dtype == "bfloat16") and not target.bf16:
                checks.append(Check("bf16", "warning", (
                    f"{member.name}/{variant.name} is bf16, but {target.name} has no bf16 tensor cores: it runs "
                    "at fp32 speed at best (estimated so) or fails to load; export it as fp16 instead")))
    if target.compute_capability == (6, 0):
        checks.append(Check("sm60", "warning", (
            f"{target.name} is Pascal (sm_60): current PyTorch and onnxruntime-gpu builds ship no sm_60 "
            "kernels, so CUDA may fail or fall back to the CPU; prefer the T4 x2 accelerator")))

    largest_weights = 0.0
    for member in manifest.members:
        variant = member.variants[0]
        batch = costing.batch_for(member)
        cost = costing.cost(variant, batch)
        largest_weights = max(largest_weights, cost.weight_bytes)
        if target.kind == "gpu":
            need = gpu_memory_need(cost)
            if not any(fits_memory(member, v, 1) for v in member.variants):
                checks.append(Check("gpu-memory", "blocking", (
                    f"{member.name} does not fit {target.name}'s {format_gib(target.memory_bytes)} of GPU memory "
                    f"even at batch 1 (weights {format_gib(cost.weight_bytes)}, {member.name}/{variant.name} at "
                    f"batch 1 needs about {format_gib(gpu_memory_need(costing.cost(variant, 1)))}): it cannot run "
                    "there; shrink or split it, or pick a target with more GPU memory"), member=member.name))
            elif need > _GPU_SHARE * target.memory_bytes:
                fitting = _largest_batch(costing, variant, batch, target.memory_bytes)
                advice = f"batch_size {fitting} fits" if fitting else "not even batch 1 fits"
                checks.append(Check("gpu-memory", "warning", (
                    f"{member.name}/{variant.name} at batch {batch} needs about {format_gib(need)} of GPU memory "
                    f"(weights {format_gib(cost.weight_bytes)}, activations {format_gib(need - cost.weight_bytes - CUDA_CONTEXT_BYTES)},"
                    f" CUDA context {format_gib(CUDA_CONTEXT_BYTES)}); {target.name} has {format_gib(target.memory_bytes)} per GPU: "
                    f"{advice}")))

    data = costing.profile.data
    row_bytes = float(data.memory_bytes_per_row or 0.0)
    if not row_bytes:
        row_bytes = 8.0 * sum(max(len(i.columns), 1) for m in manifest.members for i in m.inputs)
    table = table_memory(manifest, options.rows, row_bytes, float(data.ids_bytes_per_row or 0.0))
    acc = options.rows * member_width(manifest) * 8 * 2
    cpu_activations = 0.0
    if target.kind == "cpu":
        cpu_activations = max(gpu_memory_need(costing.cost(m.variants[0], costing.batch_for(m))) - CUDA_CONTEXT_BYTES
                              for m in manifest.members)
    ram = PROCESS_BYTES + table + acc + 2 * largest_weights + cpu_activations
    if ram > _RAM_SHARE * target.host_ram_bytes:
        blocking = ram > target.host_ram_bytes
        what = ("more than it has: the kernel would kill the notebook before any submission is written"
                if blocking else f"over {_RAM_SHARE:.0%} of it")
        checks.append(Check("ram", "blocking" if blocking else "warning", (
            f"the run needs about {format_gib(ram)} of RAM (test data {format_gib(table)}: the ids whole, the rows in "
            f"chunks; ensemble {format_gib(acc)}, weights {format_gib(2 * largest_weights)}, process "
            f"{format_gib(PROCESS_BYTES)}); the notebook has {format_gib(target.host_ram_bytes)}, {what}: "
            "use smaller batches (chunks) or fewer members")))

    checks.extend(_profile_checks(costing))
    return checks, fits_memory


def _largest_batch(costing: Costing, variant: Variant, batch: int, memory: float) -> int:
    """Largest power-of-two batch below ``batch`` whose need fits ``memory``; 0 if none."""
    b = 1
    while b * 2 < batch:
        b *= 2
    while b >= 1:
        if gpu_memory_need(costing.cost(variant, b)) <= _GPU_SHARE * memory:
            return b
        b //= 2
    return 0


def _profile_checks(costing: Costing) -> list[Check]:
    profile = costing.profile
    source = ("the GPU model fitted to published figures (GPU work) and rate constants (the host's)"
              if costing.gpu_priced else "spec sheets")
    if not profile.measured:
        return [Check("profile", "warning", f"the bundle has no measured profile: the estimate comes from {source} "
                      "alone (low confidence, wide band); run `ninefit profile BUNDLE --data DATA`")]
    out = []
    missing = [f"{m.name}/{v.name}" for m in costing.manifest.members for v in m.variants if costing.record(m, v) is None]
    if missing:
        out.append(Check("profile", "warning", f"no measurement for {', '.join(missing)}: priced from {source}"))
    if costing.options.target.strip().lower() == "local" and costing.machine is not None and not costing.machine.same:
        out.append(Check("profile", "warning", "the profile was measured on another machine "
                         f"({costing.machine.source.name}); re-run `ninefit profile` here for a same-machine estimate"))
    if profile.data.synthetic:
        out.append(Check("profile", "note", "measured on synthetic rows: reading and preprocessing of the real "
                         "table may differ; profile with --data for better figures"))
    # Repeats that disagreed: the estimator's noise check (packager.estimate.price.noise) says which, by how
    # much, and widens those stages' bands.
    return out


__all__ = ["gpu_memory_need", "preflight", "table_memory"]
