"""TunerflowGateway: jina's gRPC gateway (plus authentication) and our own REST gateway, as one.

Used from a Flow YAML::

    gateway:
      uses: TunerflowGateway
      py_modules: [tunerflow.gateway]

with ``protocol: [grpc, http]``: each port gets the server for its protocol.
"""

from __future__ import annotations

from typing import Any

from jina.enums import ProtocolType
from jina.serve.runtimes.gateway.gateway import BaseGateway
from jina.serve.runtimes.servers.composite import CompositeBaseServer

from tunerflow.errors import ConfigError
from tunerflow.gateway import prefetch_wait
from tunerflow.gateway.grpc_side import GuardedGRPCServer
from tunerflow.gateway.guard import Guard
from tunerflow.gateway.rest import RestServer
from tunerflow.process_gc import freeze_startup_heap

prefetch_wait.install()  # a client's prefetch cap: the gateway sleeps for a free slot, it does not spin

SERVERS = {ProtocolType.GRPC: GuardedGRPCServer, ProtocolType.HTTP: RestServer}


class TunerflowGateway(CompositeBaseServer, BaseGateway):
    """One server per (protocol, port) of the Flow; all share one request handler and one :class:`Guard`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        guard = Guard()
        self.servers = []
        for server_kwargs in self._server_kwargs:
            protocol = server_kwargs["runtime_args"]["protocol"]
            if not isinstance(protocol, ProtocolType):
                protocol = ProtocolType.from_string(str(protocol))
            if protocol not in SERVERS:
                raise ConfigError(f"the tunerflow gateway serves grpc and http, not {protocol}")
            self.servers.append(SERVERS[protocol](guard=guard, **server_kwargs))
        self.gateways = self.servers

    async def setup_server(self) -> None:
        """Set up every server, each watching this gateway's cancel event.

        jina's runtime hands its cancel event (set on SIGTERM) to this object after ``__init__``, so the
        servers made there hold events of their own; without this, a gateway still waiting for an
        executor that failed to start would ignore the Flow's SIGTERM and keep polling, holding its
        ports, until the Flow's main process gave up on it.
        """
        for server in self.servers:
            server.is_cancel = self.is_cancel
        await super().setup_server()
        freeze_startup_heap()  # set up: later full collections walk only what serving makes (process_gc)
