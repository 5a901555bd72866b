"""ONNX export with a parity check, int8 dynamic quantisation, and saving artifacts with both.

Builds on :mod:`tunerflow.format`, :mod:`tunerflow.modeling` and :mod:`tunerflow.artifact`.
"""

from tunerflow.export.onnx_export import check_parity, export_onnx
from tunerflow.export.quantize import quantize_int8
from tunerflow.export.save import save_artifact
from tunerflow.format import ONNX_INPUTS, ONNX_OUTPUT

__all__ = ["ONNX_INPUTS", "ONNX_OUTPUT", "check_parity", "export_onnx", "quantize_int8", "save_artifact"]
