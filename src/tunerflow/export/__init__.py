"""ONNX export with a parity check, and int8 dynamic quantisation."""

from tunerflow.export.onnx_export import ONNX_INPUTS, ONNX_OUTPUT, check_parity, export_onnx
from tunerflow.export.quantize import quantize_int8

__all__ = ["ONNX_INPUTS", "ONNX_OUTPUT", "check_parity", "export_onnx", "quantize_int8"]
