"""The converters' graphs made a member's: one input ``input``, one float output ``[batch, width]``.

Converters give a classifier two outputs, the label and the probabilities (CatBoost's behind a ZipMap, a
sequence of maps no runtime batches); a regressor one, of its own name and shape. :func:`finish` keeps the
values the ensemble combines: the probabilities (of the positive class for a binary classifier), or with
``margin`` the tree ensemble's raw scores (its ``post_transform`` set to ``NONE``), or the regressor's
value, as the spec's ``output``.
"""

from __future__ import annotations

import numpy as np

from packager.sources.native import ONNX_OPSET, ConversionError, NativeModel

_TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")


def finish(proto, model: NativeModel, output: str, margin: bool):
    """``proto`` (the converter's onnx.ModelProto) rewired to one output named ``output``, in place; returned."""
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    if len(g.input) != 1:
        raise ConversionError(f"model {model.name!r}: the converted graph has {len(g.input)} inputs, expected one")
    _rename_input(g, g.input[0].name, "input")
    producers = {o: n for n in g.node for o in n.output}
    values = _values_output(g, model)
    zipmap = producers.get(values)
    if zipmap is not None and zipmap.op_type == "ZipMap":  # CatBoost: the probabilities' tensor is its input
        values = zipmap.input[0]
        g.node.remove(zipmap)
    if margin:
        trees = [n for n in g.node if n.op_type in _TREE_OPS]
        if not trees:
            raise ConversionError(f"model {model.name!r}: prediction = \"margin\" needs a tree ensemble's raw scores, "
                                  f"and the converted {model.library} graph has no tree ensemble node")
        for n in trees:
            for a in n.attribute:
                if a.name == "post_transform":
                    a.s = b"NONE"
    def constant(name: str, values: list[int]):  # a node, not an initializer: older IR versions (CatBoost's)
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(values, np.int64), name))

    nodes = [helper.make_node("Cast", [values], [f"{output}__float"], to=TensorProto.FLOAT)]
    last = f"{output}__float"
    if model.kind == "binary":  # [batch, 2] -> the positive class's column
        nodes += [constant(f"{output}__positive", [1]),
                  helper.make_node("Gather", [last, f"{output}__positive"], [f"{output}__col"], axis=1)]
        last = f"{output}__col"
    nodes += [constant(f"{output}__shape", [-1, model.width]),
              helper.make_node("Reshape", [last, f"{output}__shape"], [output])]
    g.node.extend(nodes)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", model.width]))
    _prune(g)
    g.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    if not any(o.domain in ("", "ai.onnx") for o in proto.opset_import):  # a graph of ai.onnx.ml operators alone
        proto.opset_import.append(helper.make_opsetid("", ONNX_OPSET))
    return proto


def _values_output(g, model: NativeModel) -> str:
    """The graph output holding the values: a classifier's probabilities, a regressor's (first float) output."""
    names = [o.name for o in g.output]
    if model.kind == "regression":
        for o in g.output:
            if o.type.HasField("tensor_type") and o.type.tensor_type.elem_type in (1, 10, 11):
                return o.name
        raise ConversionError(f"model {model.name!r}: the converted regressor has no float output ({names})")
    for candidate in ("probabilities", "output_probability", "probability"):
        if candidate in names:
            return candidate
    if len(names) == 2:
        return names[1]
    raise ConversionError(f"model {model.name!r}: cannot tell the probabilities among the converted graph's outputs "
                          f"{names}")


def _rename_input(g, old: str, new: str) -> None:
    if old == new:
        return
    g.input[0].name = new
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new


def _prune(g) -> None:
    """Drop the nodes nothing the output needs (the label's branch), so the file holds what runs."""
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(list(g.node)):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)


__all__ = ["finish"]
