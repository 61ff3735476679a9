"""Public API: exported names, and the runtime's import weight."""

from __future__ import annotations

import subprocess
import sys

import pytest

import runtime

pytestmark = pytest.mark.timeout(60)


def test_runtime_exports():
    """Exactly these: adding or removing a public name is a decision, made here too."""
    assert sorted(runtime.__all__) == sorted([
        "SCHEMA_VERSION", "Bundle", "Manifest", "NinefitError", "RunOptions", "RunReport", "__version__",
        "open_bundle", "run",
    ])
    for name in runtime.__all__:
        assert hasattr(runtime, name), name
    assert callable(runtime.run)  # the function, which shadows the submodule runtime.run


def test_shared_helpers_for_the_packager():
    from runtime.cli import duration_arg
    from runtime.progress import format_gib, format_seconds

    assert duration_arg("1h30m") == 5400.0 and format_seconds(5400.0) == "1h30m00s" and format_gib(2**30) == "1.00 GiB"


def test_import_runtime_needs_numpy_alone():
    """The runtime ships into an offline notebook: heavy libraries load lazily."""
    code = (
        "import sys, runtime, runtime.backends, runtime.run, runtime.cli\n"
        "heavy = ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'cudf', 'nvidia.dali', 'pandas', 'polygraphy', 'PIL', 'psutil', 'pynvml',\n"
        "        'tokenizers', 'transformers')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_runtime_never_imports_packager():
    code = "import sys, runtime, runtime.run, runtime.cli; print('packager' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
