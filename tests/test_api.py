"""Public API: exported names, and the runtime's import weight."""

from __future__ import annotations

import subprocess
import sys

import pytest

import runtime

pytestmark = pytest.mark.timeout(60)


def test_runtime_exports():
    assert set(runtime.__all__) >= {"run", "RunOptions", "RunReport", "open_bundle", "Manifest", "NinefitError", "SCHEMA_VERSION"}
    for name in runtime.__all__:
        assert hasattr(runtime, name), name


def test_import_runtime_needs_numpy_alone():
    """The runtime ships into an offline notebook: heavy libraries load lazily."""
    code = (
        "import sys, runtime, runtime.backends, runtime.run, runtime.cli\n"
        "heavy = ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'cudf', 'nvidia.dali', 'pandas', 'polygraphy', 'PIL', 'psutil', 'pynvml')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_runtime_never_imports_packager():
    code = "import sys, runtime, runtime.run, runtime.cli; print('packager' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
