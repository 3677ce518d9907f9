"""The PLC link: the handshake served over the configured transport (OPC UA or Modbus TCP).

The one place that picks a transport: the transports import the handshake and the server base, never this.
"""

from __future__ import annotations

import logging
from typing import Any

from inspection.plant.handshake import Handshake
from inspection.plant.line_view import PlcLine
from inspection.plant.server import PlcServer
from inspection.settings.plc import PlcConfig

log = logging.getLogger(__name__)


class PlcLink:
    """A running PLC link: the handshake and its server."""

    def __init__(self, handshake: Handshake, server: PlcServer) -> None:
        self.handshake = handshake
        self.server = server

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def signals(self) -> dict[str, Any]:
        """Every input and output and the counters (triggers, overruns, ...), for display."""
        return {"endpoint": self.server.endpoint, **self.handshake.signals()}

    def close(self) -> None:
        """Stop the handshake and stop serving (the port is free when this returns)."""
        self.handshake.close()
        self.server.close()


def start_plc(line: PlcLine, config: PlcConfig) -> PlcLink | None:
    """Serve the handshake for `line` as `config` says; None when the PLC link is off. PlcError if it cannot listen."""
    if not config.enabled:
        return None
    handshake = Handshake(line, config)
    if config.protocol == "opcua":
        from inspection.plant.opcua import OpcUaServer

        server: PlcServer = OpcUaServer(config, handshake)
    else:
        from inspection.plant.modbus import ModbusServer

        server = ModbusServer(config, handshake)
    server.start()
    handshake.start(server.publish)
    line.add_result_listener(handshake.on_result)
    log.info("PLC link (%s) listening on %s", config.protocol, server.endpoint)
    return PlcLink(handshake, server)
