"""ninefit runtime: runs a bundle inside an offline Kaggle notebook.

Importing this package needs numpy alone; onnxruntime, TensorRT, pandas, PIL,
cuDF and NVML are imported lazily by the parts that use them.

The attribute ``runtime.run`` is the function :func:`runtime.run.run` (what
the notebook calls); it shadows the submodule of the same name, so even
``import runtime.run as m`` binds the function. Reach the module's other names
with ``from runtime.run import load_runner``, or the module itself with
``importlib.import_module("runtime.run")``.
"""

__version__ = "0.1.0"

from runtime.bundle import Bundle, open_bundle
from runtime.errors import NinefitError
from runtime.manifest import SCHEMA_VERSION, Manifest
from runtime.run import RunOptions, RunReport, run

__all__ = ["SCHEMA_VERSION", "Bundle", "Manifest", "NinefitError", "RunOptions", "RunReport", "__version__", "open_bundle", "run"]
