"""Exceptions raised by ninefit.

Every error ninefit raises on purpose derives from :class:`NinefitError`; the
CLI turns it into a one-paragraph message and a non-zero exit. Anything else
that escapes is a bug in ninefit and is shown with its traceback.

Tree::

    NinefitError
    ├── SpecError                 the TOML spec is wrong (packager side)
    ├── ModelLoadError            checkpoint / factory / TorchScript cannot be loaded
    ├── ExportError               torch -> ONNX export failed (names the op)
    ├── ParityError               export disagrees with the original model
    │   ├── ShapeMismatchError    an output has another shape
    │   └── ToleranceError        an output differs by more than the tolerance
    ├── BundleError               the bundle cannot be trusted
    │   ├── SchemaVersionError    manifest from a newer (or unknown) schema
    │   └── ChecksumError         a bundle file is modified or missing
    ├── DataError                 test data / sample submission do not fit the spec
    ├── BackendError              an inference backend failed
    │   ├── BackendUnavailableError   backend or provider not installed here
    │   └── OutOfMemoryError      the backend ran out of (GPU or host) memory
    ├── HookError                 the user's features / postprocess hook failed or returned
    │   │                         something that does not fit (its traceback in the message)
    │   └── HookTimeout           it was still running when its time ran out (abandoned)
    ├── PackagingError            wheelhouse, dataset or notebook could not be built
    │   └── KaggleError           the Kaggle CLI refused or failed a step of `ninefit push` (exit 1)
    ├── StorageError              a file could not be written: the machine's disk is full or the folder is
    │                             not writable (the user's environment, never a model's failure)
    └── BudgetError               the time budget cannot be met at all
"""

from __future__ import annotations


class NinefitError(Exception):
    """Root of every error ninefit raises on purpose (a user-facing problem)."""

    #: Process exit status the CLI uses for this kind of error.
    exit_code = 2


class SpecError(NinefitError):
    """The ensemble spec (TOML) is malformed or refers to something that is missing."""


class ModelLoadError(NinefitError):
    """A model could not be built or loaded (bad factory, unreadable checkpoint)."""


class ExportError(NinefitError):
    """A model could not be exported to ONNX."""


class ParityError(NinefitError):
    """An exported model does not reproduce the original model's outputs."""


class ShapeMismatchError(ParityError):
    """An exported output has a different shape from the original."""


class ToleranceError(ParityError):
    """An exported output differs from the original by more than the tolerance."""


class BundleError(NinefitError):
    """The bundle is incomplete, modified, or otherwise cannot be trusted."""


class SchemaVersionError(BundleError):
    """The manifest was written by a newer (or unknown) schema version."""


class ChecksumError(BundleError):
    """A bundle file is missing or its sha256 does not match the manifest."""


class DataError(NinefitError):
    """Test data or sample submission do not match what the bundle expects."""


class BackendError(NinefitError):
    """An inference backend failed to load or run a model."""


class BackendUnavailableError(BackendError):
    """The requested backend (or execution provider) is not available here."""


class OutOfMemoryError(BackendError):
    """The backend ran out of memory; the caller may retry with a smaller batch."""


class HookError(NinefitError):
    """A features or postprocess hook (the user's own code in the bundle) raised, or returned the wrong thing."""


class HookTimeout(HookError):
    """A hook was still running when its time ran out: abandoned, or never called again after that.

    Attributes:
        first: True for the call that was abandoned, False for the later calls refused at once.
    """

    def __init__(self, message: str, *, first: bool = True):
        super().__init__(message)
        self.first = first


class PackagingError(NinefitError):
    """A bundle artefact (wheelhouse, dataset metadata, notebook) could not be built."""


class KaggleError(PackagingError):
    """The Kaggle CLI refused the credentials or failed a step of ``ninefit push``.

    Not a usage error: the message says what was sent before it and what was not.
    """

    exit_code = 1


class StorageError(NinefitError):
    """A write failed for a reason of the machine's: no space left, no permission, a read-only folder.

    Never a member's failure: a run stops on it (the submission already on disk
    stays whole), with one message naming the path, the free space and what to do.
    """


class UsageError(NinefitError, ValueError):
    """An option or setting is not understood or out of range: a command-line flag, an environment
    variable (``NINEFIT_*``), a field of :class:`runtime.run.RunOptions`. The message names it, what was
    given and what is accepted. Raised by the settings helpers themselves (:mod:`runtime.settings`)."""


class BudgetError(NinefitError):
    """The time budget is impossible to meet (e.g. the deadline has already passed)."""


__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "BudgetError",
    "BundleError",
    "ChecksumError",
    "DataError",
    "ExportError",
    "HookError",
    "HookTimeout",
    "KaggleError",
    "ModelLoadError",
    "NinefitError",
    "OutOfMemoryError",
    "PackagingError",
    "ParityError",
    "SchemaVersionError",
    "ShapeMismatchError",
    "SpecError",
    "StorageError",
    "ToleranceError",
    "UsageError",
]
