"""ONNX export of trained KANs (``to_onnx``): filled by the ONNX issue."""
