"""[plc] in the station config: the PLC link's protocol, address and timing."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from inspection.errors import ConfigError
from inspection.settings.parse import choice, float_in, int_in

log = logging.getLogger(__name__)

PROTOCOLS = ("opcua", "modbus")
DEFAULT_PORTS = {"opcua": 4840, "modbus": 5020}


@dataclasses.dataclass(frozen=True)
class PlcConfig:
    """[plc] in the station config."""

    enabled: bool = False
    protocol: str = "opcua"  # "opcua" or "modbus"
    host: str = ""  # the address to listen on; required when enabled
    port: int = 0  # 0: the protocol's default (OPC UA 4840, Modbus 5020)
    heartbeat_s: float = 1.0  # Heartbeat toggles this often
    result_timeout_s: float = 10.0  # an accepted Trigger without a result this long: ErrorCode 12
    namespace: str = "urn:lepton-inspect:plc"  # OPC UA namespace URI of the Station object

    @property
    def bind_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.protocol]


def _host_text(value: str, where: str) -> str:
    ok = value and len(value) <= 253 and all(c.isascii() and (c.isalnum() or c in ".-:_") for c in value)
    if not ok:
        raise ConfigError(f"plc.host in {where} must be an IP address or host name to listen on, not {value!r}.")
    return value


def parse_plc(raw: dict[str, Any], where: str) -> PlcConfig:
    """The [plc] table (already merged over the default, so every key is there with its type)."""
    enabled = raw["enabled"]
    protocol = choice(raw["protocol"], "plc.protocol", where, PROTOCOLS)
    host = raw["host"].strip()
    if enabled and not host:
        raise ConfigError(
            f"plc.host in {where} must name the address to listen on (e.g. the machine network's "
            f"interface) when plc.enabled is true."
        )
    namespace = raw["namespace"].strip()
    if not namespace:
        raise ConfigError(f"plc.namespace in {where} must be a URI, not empty.")
    return PlcConfig(
        enabled=enabled,
        protocol=protocol,
        host=_host_text(host, where) if host else "",
        port=int_in(raw["port"], "plc.port", where, 0, 65_535),
        heartbeat_s=float_in(
            raw["heartbeat_s"], "plc.heartbeat_s", where, 0.05, 60.0, rule="a time in seconds from 0.05 to 60"
        ),
        result_timeout_s=float_in(
            raw["result_timeout_s"],
            "plc.result_timeout_s",
            where,
            0.1,
            3600.0,
            rule="a time in seconds from 0.1 to 3600",
        ),
        namespace=namespace,
    )
