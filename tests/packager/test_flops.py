"""FLOP and byte counts of tiny ONNX graphs, checked against hand arithmetic."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import packager.estimate
from packager.estimate import GraphCost, count_graph
from runtime.errors import ModelLoadError

pytestmark = pytest.mark.timeout(60)


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _init(name, shape, dtype=np.float32):
    return numpy_helper.from_array(np.zeros(shape, dtype=dtype), name)


def _conv(batch="batch") -> onnx.ModelProto:
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])
    return _model([node], [_vi("x", [batch, 3, 32, 32])], [_vi("y", None)],
                  [_init("w", (16, 3, 3, 3)), _init("b", (16,))])


def test_exported_names():
    assert set(packager.estimate.__all__) == {
        "TARGETS", "Calibration", "Estimate", "GraphCost", "Hardware", "NodeCost",
        "check_precision", "count_graph", "detect_local", "fingerprint", "get_target",
        "parse_cpuinfo", "translate",
        # the estimate itself (profile.py, estimator.py, calibrate.py, render.py, chart.py)
        "STAGES", "VERDICTS", "BudgetEstimate", "CalibrationStore", "Check", "EstimateOptions",
        "FitPlan", "Item", "ProfileOptions", "calibrate", "default_calibration_path",
        "estimate_bundle", "format_table", "profile_bundle", "profile_step", "store_profile",
        "verdict", "write_chart",
        # a bundle that serves the evaluation API (serve/)
        "ServeEstimate", "declared_batches", "estimate_serve", "format_serve",
    }


def test_conv_exact():
    cost = count_graph(_conv(), batch_size=1)
    # Y = [1, 16, 32, 32]; 2 * Cout*Hout*Wout * Cin*kh*kw = 2 * 16*32*32 * 3*3*3 = 884_736
    # bias: Cout*Hout*Wout = 16*32*32 = 16_384
    assert cost.flops == 884_736 + 16_384
    assert cost.per_op["Conv"][0] == cost.flops
    # bytes: x 3*32*32*4 = 12_288, w 16*27*4 = 1_728, b 64, y 16*1024*4 = 65_536
    assert cost.bytes == 12_288 + 1_728 + 64 + 65_536
    assert cost.weight_bytes == 1_728 + 64
    assert cost.input_bytes == 12_288 and cost.output_bytes == 65_536
    assert cost.unknown_ops == () and cost.unresolved == ()


def test_batch_scales_flops_linearly():
    one, eight = count_graph(_conv(), 1), count_graph(_conv(), 8)
    assert eight.batch_size == 8
    assert eight.flops == 8 * one.flops
    # activations scale with the batch, weights are read once per call
    assert eight.bytes - eight.weight_bytes == 8 * (one.bytes - one.weight_bytes)
    assert eight.weight_bytes == one.weight_bytes


def test_static_batch_is_reported():
    cost = count_graph(_conv(batch=4), batch_size=8)
    assert cost.batch_size == 4
    assert cost.flops == 4 * (884_736 + 16_384)


def test_group_and_depthwise_conv():
    depthwise = helper.make_node("Conv", ["x", "w"], ["y"], group=8)
    cost = count_graph(_model([depthwise], [_vi("x", ["n", 8, 16, 16])], [_vi("y", None)],
                              [_init("w", (8, 1, 3, 3))]))
    # Y = [1, 8, 14, 14]; 2 * 8*14*14 * (Cin/group = 1)*3*3 = 28_224, no bias
    assert cost.flops == 28_224
    grouped = helper.make_node("Conv", ["x", "w"], ["y"], group=2)
    cost = count_graph(_model([grouped], [_vi("x", ["n", 8, 10, 10])], [_vi("y", None)],
                              [_init("w", (4, 4, 3, 3))]))
    # Y = [1, 4, 8, 8]; 2 * 4*8*8 * (Cin/group = 8/2 = 4)*3*3 = 18_432
    assert cost.flops == 18_432


def test_conv_transpose():
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"])
    cost = count_graph(_model([node], [_vi("x", ["n", 4, 5, 5])], [_vi("y", None)],
                              [_init("w", (4, 2, 3, 3))]))
    # every input element scatters into Cout/group*kh*kw outputs: 2 * (4*5*5) * 2*3*3 = 3_600
    assert cost.flops == 3_600


def test_matmul_batched():
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    cost = count_graph(_model([node], [_vi("a", ["n", 4, 5])], [_vi("y", None)],
                              [_init("b", (5, 6))]), batch_size=3)
    # Y = [3, 4, 6], K = 5: 2 * 3*4*6 * 5 = 720
    assert cost.flops == 720


def test_einsum_matches_matmul():
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="bij,bjk->bik")
    cost = count_graph(_model([node], [_vi("a", ["n", 3, 4]), _vi("b", ["n", 4, 5])],
                              [_vi("y", None)]), batch_size=2)
    # 2 operands * b*i*j*k = 2 * 2*3*4*5 = 240 = 2 * numel(Y=2*3*5) * K=4
    assert cost.flops == 240


def test_gemm_with_bias():
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=1)
    cost = count_graph(_model([node], [_vi("x", ["n", 64])], [_vi("y", None)],
                              [_init("w", (32, 64)), _init("c", (32,))]), batch_size=2)
    # 2*M*N*K + M*N = 2*2*32*64 + 2*32 = 8_192 + 64
    assert cost.flops == 8_256
    # x 2*64*4 = 512, w 32*64*4 = 8_192, c 128, y 2*32*4 = 256
    assert cost.bytes == 512 + 8_192 + 128 + 256


def test_relu_add_chain_and_fp16_bytes():
    def chain(dtype):
        nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])]
        return _model(nodes, [_vi("x", ["n", 10], dtype)], [_vi("y", None, dtype)])

    fp32, fp16 = count_graph(chain(TensorProto.FLOAT)), count_graph(chain(TensorProto.FLOAT16))
    # Relu 10 + Add 10, one flop per output element
    assert fp32.flops == fp16.flops == 20
    # Relu reads 10 and writes 10, Add reads 20 and writes 10: 50 elements * 4 bytes
    assert fp32.bytes == 200 and fp16.bytes == 100
    assert fp32.dtype == "float32" and fp16.dtype == "float16"


def test_transcendental_norm_pool_and_movement():
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"]),
        helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Softmax", ["f"], ["y"]),
    ]
    cost = count_graph(_model(nodes, [_vi("x", ["n", 2, 8, 8])], [_vi("y", None)]))
    # Sigmoid 6 * 128, MaxPool 32 outputs * 4 taps, Flatten 0, Softmax 5 * 32
    assert cost.flops == 6 * 128 + 32 * 4 + 0 + 5 * 32
    assert cost.per_op["Flatten"] == (0.0, 0.0)
    assert cost.kernels == 3


def test_attention_op():
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"])
    model = _model([node], [_vi("q", ["n", 4, 16, 8]), _vi("k", ["n", 4, 32, 8]),
                            _vi("v", ["n", 4, 32, 8])], [_vi("y", None)], opset=23)
    # per sample: QK^T 2*H*Sq*Skv*D + AV 2*H*Sq*Skv*D + softmax 5*H*Sq*Skv
    # = 2*4*16*32*8 + 2*4*16*32*8 + 5*4*16*32 = 32_768 + 32_768 + 10_240
    assert count_graph(model).flops == 75_776


def test_unknown_op_and_unresolved_shape():
    nodes = [helper.make_node("Frobnicate", ["x"], ["z"], domain="my.ops"),
             helper.make_node("Relu", ["z"], ["y"])]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [_vi("x", ["n", 10])], [_vi("y", None)]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.ops", 1)],
    )
    cost = count_graph(model)
    assert cost.unknown_ops == ("my.ops.Frobnicate",)
    assert "z" in cost.unresolved
    assert cost.flops == 0
    assert cost.bytes == 40  # only x (10 fp32) is known


def test_other_symbolic_dims_bound_by_name():
    node = helper.make_node("Relu", ["x"], ["y"])
    model = _model([node], [_vi("x", ["batch", "seq", 4])], [_vi("y", None)])
    assert count_graph(model).unresolved  # seq unknown
    assert count_graph(model, 2, dims={"seq": 5}).flops == 2 * 5 * 4


def test_external_data_and_path(tmp_path):
    path = tmp_path / "conv.onnx"
    model = _conv()
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="conv.onnx.data", size_threshold=0)
    assert (tmp_path / "conv.onnx.data").exists()
    from_path = count_graph(path, 2)
    assert from_path.flops == count_graph(model, 2).flops
    assert from_path.bytes == count_graph(model, 2).bytes


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        count_graph(bad)
    with pytest.raises(ModelLoadError, match="missing.onnx"):
        count_graph(tmp_path / "missing.onnx")


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_torch_mlp_export(dynamo):
    torch = pytest.importorskip("torch")

    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(64, 32), torch.nn.Linear(32, 10)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch")
            program = torch.onnx.export(Mlp().eval(), (torch.randn(2, 64),), dynamo=True,
                                        dynamic_shapes={"x": {0: batch}}, verbose=False)
            model = program.model_proto
        else:
            buffer = io.BytesIO()
            torch.onnx.export(Mlp().eval(), (torch.randn(2, 64),), buffer, dynamo=False,
                              input_names=["x"], dynamic_axes={"x": {0: "batch"}})
            model = onnx.load_from_string(buffer.getvalue())
    one, eight = count_graph(model, 1), count_graph(model, 8)
    # matmuls 2*(64*32 + 32*10) = 4_736; biases 32 + 10; relu 32
    assert one.flops == 2 * (64 * 32 + 32 * 10) + 32 + 10 + 32
    assert eight.flops == 8 * one.flops
    # weights 64*32 + 32 + 32*10 + 10 floats, read once per call
    assert one.weight_bytes == eight.weight_bytes == 4 * (64 * 32 + 32 + 32 * 10 + 10)
    assert isinstance(one, GraphCost) and not one.unknown_ops and not one.unresolved


def test_large_weights_and_reshape_leave_the_model_untouched():
    weight = numpy_helper.from_array(np.ones((256, 128), np.float32), "w")  # 128 KiB
    target = numpy_helper.from_array(np.array([-1, 4, 32], np.int64), "s")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Reshape", ["m", "s"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
    model = _model(nodes, [_vi("x", ["n", 256])], [_vi("y", None)], [weight, target])
    before = model.SerializeToString()
    cost = count_graph(model, batch_size=4)
    # MatMul 2 * (4*128) * 256 = 262_144; Reshape 0; Softmax 5 * 4*128 = 2_560
    assert cost.flops == 262_144 + 2_560 and cost.unresolved == ()
    assert cost.weight_bytes == 256 * 128 * 4
    assert model.SerializeToString() == before


def test_local_functions_are_inlined():
    double = helper.make_function("local", "Double", ["x"], ["y"],
                                  [helper.make_node("Add", ["x", "x"], ["y"])],
                                  [helper.make_opsetid("", 17)])
    graph = helper.make_graph([helper.make_node("Double", ["x"], ["y"], domain="local")], "g",
                              [_vi("x", ["n", 3])], [_vi("y", None)])
    model = helper.make_model(graph, functions=[double], opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
    cost = count_graph(model, batch_size=2)
    assert cost.flops == 2 * 3 and cost.unknown_ops == ()  # one Add per output element
