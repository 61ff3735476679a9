"""ninefit's targets as Kaggle offers them: the machine shape a notebook asks for.

``kernel-metadata.json`` picks the accelerator with ``enable_gpu`` and
``machine_shape``; ``enable_gpu`` alone has given users a P100 (Kaggle/kaggle-cli
#821, #490), so a GPU notebook always names its shape. The shapes, the GPUs
the image's torch has kernels for and the shapes Kaggle's CLI calls retired
are facts of ``packager/data/kaggle_image.txt`` (:mod:`packager.offline.image`);
the compute capability of each target is the hardware catalog's
(:mod:`packager.estimate.price.hardware`). :func:`accelerator` puts them together
and refuses what would cost a submission: a GPU the image's torch cannot use
(the P100: no sm_60 kernels in its cu128 torch) unless the notebook pins an
older image, a GPU target Kaggle has no shape for, a shape of another target.
"""

from __future__ import annotations

from dataclasses import dataclass

from packager.estimate.price.hardware import TARGETS, get_target
from packager.offline.image import ImageFacts, image_facts
from runtime.errors import PackagingError


@dataclass(frozen=True)
class Accelerator:
    """What a notebook of a target asks Kaggle for.

    Attributes:
        target: ninefit's target (``t4x2``, ``cpu``...).
        machine_shape: Kaggle's shape (``NvidiaTeslaT4``); None for a CPU notebook.
        notes: Things to tell the user that do not stop the push.
    """

    target: str
    machine_shape: str | None
    notes: tuple[str, ...] = ()

    @property
    def enable_gpu(self) -> bool:
        return self.machine_shape is not None

    def line(self) -> str:
        """``t4x2 -> machine shape NvidiaTeslaT4 (enable_gpu true)``."""
        if self.machine_shape is None:
            return f"{self.target} -> a CPU notebook (enable_gpu false, no machine shape)"
        return f"{self.target} -> machine shape {self.machine_shape} (enable_gpu true)"


def kaggle_targets(facts: ImageFacts | None = None) -> tuple[str, ...]:
    """The targets a Kaggle notebook can be (every catalog target but ``local``), in catalog order."""
    facts = facts or image_facts()
    return tuple(t for t in TARGETS if t in facts.shapes)


def target_of_shape(shape: str, facts: ImageFacts | None = None) -> str | None:
    """The target whose Kaggle shape is ``shape`` (case-insensitive), None if no target has it."""
    facts = facts or image_facts()
    return next((t for t, s in facts.shapes.items() if s and s.lower() == shape.strip().lower()), None)


def unsupported_gpu(target: str, facts: ImageFacts | None = None) -> str:
    """Why the image's torch cannot use ``target``'s GPU (below its lowest compute capability); "" if it can."""
    facts = facts or image_facts()
    hardware = get_target(target)
    cc = hardware.compute_capability
    if hardware.kind != "gpu" or cc is None or cc >= facts.min_gpu_capability:
        return ""
    low = facts.min_gpu_capability
    return (f"{hardware.name} (sm_{cc[0]}{cc[1]}) is below the lowest GPU the image's torch {facts.torch} has "
            f"kernels for (sm_{low[0]}{low[1]}; {facts.sources.get('min_gpu_capability', '')})")


def accelerator(target: str, *, machine_shape: str | None = None, docker_image: str | None = None,
                facts: ImageFacts | None = None) -> Accelerator:
    """The accelerator a notebook for ``target`` asks for, or why it must not be pushed.

    Args:
        target: ninefit's target (the bundle's, as packaged).
        machine_shape: A shape to use instead of the image file's (for a GPU
            target Kaggle documents none, e.g. L4 x4 in one competition); it
            must not be another target's shape.
        docker_image: The notebook pins this (older) image: a GPU the current
            image's torch cannot use is then allowed, with a note.
        facts: The image's facts; None reads the image file.

    Raises:
        PackagingError: ``local`` or an unknown target; a GPU the image's torch
            has no kernels for (P100) without a pinned image; a GPU target
            with no known shape and none given; a shape of another target.
    """
    facts = facts or image_facts()
    key = target.strip().lower()
    known = kaggle_targets(facts)
    if key not in known:
        raise PackagingError(
            f"Target {target!r} is not a Kaggle accelerator. Expected one of {', '.join(known)} "
            "(the bundle's --target when packaging; 'local' is this machine, not Kaggle's).")
    hardware = get_target(key)
    notes: list[str] = []
    if hardware.kind == "cpu":
        if machine_shape:
            raise PackagingError(f"--machine-shape {machine_shape} given for the CPU target: a CPU notebook "
                                 "has no machine shape (enable_gpu false). Expected no --machine-shape.")
        return Accelerator(key, None)
    why = unsupported_gpu(key, facts)
    if why:
        if not docker_image:
            raise PackagingError(
                f"Refusing target {key!r} for GPU work on Kaggle's current image: {why}. The notebook would "
                "allocate the GPU and fail at its first CUDA operation. Package for t4x2 (or another GPU "
                "target), or pin an older image that still supports it with --docker-image IMAGE.")
        notes.append(f"{why}; allowed because the notebook pins the image {docker_image}")
    shape = machine_shape or facts.shapes.get(key)
    if not shape:
        raise PackagingError(
            f"Kaggle documents no machine shape for target {key!r} ({facts.sources.get('shape.' + key, '')}), "
            "and `enable_gpu` without a shape has given users a P100. Expected --machine-shape NAME as your "
            "competition names it, or another target.")
    other = target_of_shape(shape, facts)
    if other is not None and other != key:
        raise PackagingError(f"--machine-shape {shape} is Kaggle's shape for target {other!r}, not for the "
                             f"bundle's target {key!r}. Expected {facts.shapes.get(key) or 'the shape of ' + key}, "
                             f"or re-package with --target {other}.")
    if shape in facts.retired_shapes:
        notes.append(f"Kaggle's CLI calls {shape} retired: {facts.sources.get('retired_shapes', '')}")
    return Accelerator(key, shape, tuple(notes))


__all__ = ["Accelerator", "accelerator", "kaggle_targets", "target_of_shape", "unsupported_gpu"]
