"""A small ONNX graph builder: unique names, initializers, one place that checks every
operator against the target opset, and the one place that assembles the ``ModelProto``
(``GraphBuilder.to_model``).  onnx is imported by the caller (``to_onnx``)."""

from __future__ import annotations

import numpy as np

__all__ = ["GraphBuilder", "ExportError", "MIN_OPSET"]

# the opset in which each operator we emit got the signature and the element types we use it
# with (Clip: int64 from 12; Unsqueeze: axes as an input from 13)
OP_SINCE = {
    "Add": 7, "Sub": 7, "Mul": 7, "Div": 7, "Neg": 6, "Abs": 6, "Sign": 9, "Sqrt": 6, "Exp": 6, "Log": 6,
    "Sin": 7, "Cos": 7, "Tanh": 6, "Sigmoid": 6, "Asin": 7, "Acos": 7, "Atan": 7, "Min": 8,
    "Max": 8, "Clip": 12, "Where": 9, "Less": 9, "Greater": 9, "GreaterOrEqual": 12, "Cast": 6,
    "Gather": 11, "Unsqueeze": 13, "MatMul": 9, "Identity": 1, "Reshape": 5, "Floor": 6,
    "GatherElements": 11, "Gemm": 11, "Concat": 11, "Expand": 8,
}
# the lowest opset the export accepts, and its default: the newest since-version above, and
# never below 13 (the oldest opset the tests and the portability checks cover)
MIN_OPSET = max(13, *OP_SINCE.values())


class ExportError(ValueError):
    """A model, or a part of one, that cannot be exported as asked."""


class GraphBuilder:
    """Collects nodes and initializers of one graph in float dtype ``dtype`` (numpy)."""

    def __init__(self, opset: int, dtype):
        import onnx

        self.onnx = onnx
        self.opset = opset
        self.dtype = np.dtype(dtype)
        self.nodes = []
        self.initializers = []
        self._names: dict = {}
        self._consts: dict = {}
        self.memo: dict = {}  # values an emitter derives once per graph (flattened indices), by recipe

    def name(self, hint: str) -> str:
        count = self._names.get(hint, 0)
        self._names[hint] = count + 1
        return hint if count == 0 else f"{hint}_{count}"

    def const(self, value, hint: str = "c", dtype=None) -> str:
        """An initializer holding ``value`` (in the graph's float dtype unless dtype is given);
        small scalars are shared."""
        arr = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        key = None
        if arr.size == 1 and arr.ndim <= 1:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        if key is not None:
            self._consts[key] = name
        return name

    def op(self, op_type: str, *inputs: str, hint: str | None = None, **attrs) -> str:
        since = OP_SINCE.get(op_type)
        if since is None:  # pragma: no cover - a programming error, caught by the tests
            raise ExportError(f"internal: operator {op_type} is not in the exporter's opset table")
        if since > self.opset:
            raise ExportError(f"operator {op_type} needs opset >= {since}; asked for opset {self.opset}")
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], name=self.name("n_" + out),
                                                     **attrs))
        return out

    def prune(self, outputs) -> None:
        """Drop the nodes that no path to ``outputs`` uses, and then unused initializers (an
        emitter may build a value, such as table rows, that the path it takes does not need)."""
        needed = set(outputs)
        kept = []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.output):
                kept.append(node)
                needed.update(node.input)
        self.nodes = kept[::-1]
        self.initializers = [t for t in self.initializers if t.name in needed]
        self._consts = {key: name for key, name in self._consts.items() if name in needed}

    def to_model(self, name: str, inputs, outputs, *, producer=None, metadata=None, doc=None):
        """The ``onnx.ModelProto`` of the nodes and initializers collected so far.

        name: the graph's name.  inputs, outputs: [(value name, shape)], tensors of the graph's
        dtype; a shape lists ints and symbolic dimension names (``["batch", 3]``).  The model
        imports the default domain at this builder's opset, with the lowest IR version that
        allows it.  producer: (name, version) or None; metadata: {key: str value} model
        properties (``metadata_props``, in that order) or None; doc: the model's ``doc_string``
        or None.  Not checked here (``onnx.checker`` is the caller's to run)."""
        helper = self.onnx.helper
        elem = helper.np_dtype_to_tensor_dtype(self.dtype)
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(value, elem, list(shape)) for value, shape in inputs],
            [helper.make_tensor_value_info(value, elem, list(shape)) for value, shape in outputs],
            self.initializers,
        )
        opsets = [helper.make_opsetid("", self.opset)]
        proto = helper.make_model(graph, opset_imports=opsets)
        proto.ir_version = helper.find_min_ir_version_for(opsets)
        if producer is not None:
            proto.producer_name, proto.producer_version = producer
        if doc is not None:
            proto.doc_string = doc
        if metadata:
            helper.set_model_props(proto, metadata)
        return proto

    # conveniences
    def add(self, a, b, hint=None):
        return self.op("Add", a, b, hint=hint)

    def mul(self, a, b, hint=None):
        return self.op("Mul", a, b, hint=hint)

    def where(self, cond, a, b, hint=None):
        return self.op("Where", cond, a, b, hint=hint)
