"""Process-wide locks for what cannot happen in two threads at once, whatever the threads are doing.

Lanes are threads (:mod:`runtime.execute.lanes`), and a few things are not
safe side by side in one process, whoever does them: a backend building a
session, the executor reading a checkpoint. They share these locks, so a
backend needs to know nothing of lanes.
"""

from __future__ import annotations

import threading

#: Held around what builds Python ASTs or compiles code while other threads run: CPython 3.11 keeps the AST
#: constructor's recursion depth per interpreter, so two threads doing so at once can fail with "SystemError: AST
#: constructor recursion depth mismatch" (numpy's .npy header parse, torch.fx code generation when a program loads).
PY_COMPILE_LOCK = threading.RLock()

__all__ = ["PY_COMPILE_LOCK"]
