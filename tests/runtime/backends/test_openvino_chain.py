"""OpenVINO in the fallback chain: after onnxruntime's CPU step, at fp32, only where openvino is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.backends import available, chain, onnxruntime as ort
from runtime.backends.base import BackendOptions
from runtime.execute.lanes import choose_lanes


def _matmul(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_openvino_comes_after_onnxruntime_cpu_and_before_torch_cpu(tmp_path):
    labels = [c.label for c in chain.candidates(_matmul(tmp_path / "m.onnx"), "m/fp32", BackendOptions())]
    assert labels == list(chain.STEPS)
    assert labels.index("onnxruntime-cpu") < labels.index("openvino-cpu") < labels.index("torch-cpu")
    fp16 = {c.label: c.skip for c in chain.candidates(tmp_path / "m.onnx", "m/fp16", BackendOptions(precision="fp16"))}
    assert "not fp16" in fp16["openvino-cpu"]


@pytest.mark.skipif("openvino" not in available(), reason="openvino is not installed (pip install 'ninefit[openvino]')")
def test_where_onnxruntime_cpu_fails_the_chain_runs_the_file_on_openvino_at_fp32(tmp_path, monkeypatch, capsys):
    class Broken(ort.OnnxRuntimeRunner):
        def activate_impl(self):
            raise RuntimeError("onnxruntime is broken here (injected)")

    monkeypatch.setattr(ort, "OnnxRuntimeRunner", Broken)
    runner = chain.load(_matmul(tmp_path / "m.onnx"), "m/fp32", BackendOptions(threads=1))
    x = np.ones((2, 4), dtype=np.float32)
    with runner:
        out = runner.infer({"x": x})["y"]
        assert runner.used == "openvino-cpu" and runner.fell_back, runner.attempts
        assert runner.describe() == "openvino CPU (fp32, inference precision fp32)"
        assert runner.inner.compiled.get_property("INFERENCE_NUM_THREADS") == 1  # the lane's threads
    np.testing.assert_allclose(out, x @ (np.arange(12, dtype=np.float32).reshape(4, 3) / 10), rtol=1e-5)
    assert "onnxruntime-cpu failed: RuntimeError: onnxruntime is broken here" in capsys.readouterr().err


def test_on_a_cpu_target_every_lane_gets_the_notebooks_cores_as_threads_and_says_so():
    # Kaggle's CPU notebook: 4 cores. Default: 4 lanes of 1 thread; one lane (RAM, or --lanes 1): all 4 threads.
    specs, why = choose_lanes(gpus=0, cores=4, cpu_target=True)
    assert [s.threads for s in specs] == [1, 1, 1, 1]
    assert "1 intra-op thread(s) per lane (4 core(s) here / 4 lane(s)" in why, why
    specs, why = choose_lanes(gpus=0, cores=4, lanes=1, cpu_target=True)
    assert [s.threads for s in specs] == [4] and "4 intra-op thread(s) per lane" in why, why
    specs, why = choose_lanes(gpus=0, cores=4, lanes=2, cpu_target=True)
    assert [s.threads for s in specs] == [2, 2]
    specs, why = choose_lanes(gpus=0, cores=4, lanes=1, threads=3, cpu_target=True)
    assert [s.threads for s in specs] == [3] and "(--threads" in why
    # Not a CPU target: one lane keeps onnxruntime's own choice, as before.
    assert choose_lanes(gpus=0, cores=4, lanes=1)[0][0].threads is None
