"""The tunerflow gateway: jina's gRPC side with authentication, and a strict REST side of our own.

``gateway: {uses: TunerflowGateway, py_modules: [tunerflow.gateway]}`` in a Flow YAML.
"""

from tunerflow.gateway.server import TunerflowGateway

__all__ = ["TunerflowGateway"]
