"""ONNX export of trained KANs: ``to_onnx(model)``, and running the result with onnxruntime.
onnx and onnxruntime are imported only when these are called."""

from .graph import ExportError
from .onnx_export import default_opset, to_onnx
from .serving import OnnxModel, available_providers, predict_file
from .symbolic_ops import register_onnx

__all__ = ["to_onnx", "ExportError", "default_opset", "register_onnx", "OnnxModel", "available_providers",
           "predict_file"]
