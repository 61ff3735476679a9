"""The ensemble spec: one TOML file describing models, data and submission.

Every key is documented in docs/spec.md. Paths are relative to the spec
file. Parsing validates everything it can without torch, and reports each
problem as a :class:`~runtime.errors.SpecError` naming the key, its table,
what it got and what was expected. The spec is strict: a key this parser does
not know is an error (with the closest valid key), never silently ignored,
because a misspelt ``wieght`` or ``chekpoint`` would otherwise package a
wrong ensemble that passes every check.

:mod:`.types` holds what a parsed spec is, :mod:`.tables` the strict readers of
its TOML tables, :mod:`.models` and :mod:`.data` the parsers of ``[[model]]``,
``[data]`` and ``[submission]``, and :mod:`.load` :func:`load_spec`.
"""

from __future__ import annotations

from packager.spec.load import load_spec
from packager.spec.types import HooksIn, ModelSpec, Spec, SubmissionSpecIn, VariantSpec

__all__ = ["HooksIn", "ModelSpec", "Spec", "SubmissionSpecIn", "VariantSpec", "load_spec"]
