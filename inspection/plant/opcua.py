"""The PLC handshake over OPC UA: an asyncua server on its own thread and event loop.

One object, Objects/Station (browse names in the `plc.namespace` namespace), holds a variable per
signal (node ids `ns=<ns>;s=Station.<Name>`); the PLC may write only the inputs. Client writes are
seen through the server's PostWrite callback: every write of every client, once and in order, so a
Trigger pulse shorter than any sampling or polling interval is not lost (a server-side subscription
samples and may coalesce; polling would miss a pulse and cost CPU for nothing).

Security: NoSecurity with anonymous sessions only (no remote admin: no client can write an output
or change the address space), for an isolated machine network only; the server binds only to `plc.host`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asyncua import ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds

from inspection.plant.handshake import Handshake
from inspection.plant.server import PlcServer
from inspection.plant.signals import KINDS, SIGNALS, Kind
from inspection.settings.plc import PlcConfig

_VARIANTS = {
    Kind.BOOL: ua.VariantType.Boolean,
    Kind.INT: ua.VariantType.Int32,
    Kind.FLOAT: ua.VariantType.Double,
    Kind.STR: ua.VariantType.String,
}


def _node_id(name: str, ns: int) -> ua.NodeId:
    """A string node id in namespace `ns`."""
    return ua.NodeId(ua.String(name), ua.Int16(ns))


def endpoint_url(host: str, port: int) -> str:
    return f"opc.tcp://{f'[{host}]' if ':' in host else host}:{port}/lepton/"


class OpcUaServer(PlcServer):
    """The Station object served at `endpoint`."""

    what = "OPC UA server"
    thread_name = "lepton-plc-opcua"

    def __init__(self, config: PlcConfig, handshake: Handshake) -> None:
        super().__init__()
        self.config = config
        self.handshake = handshake
        self.endpoint = endpoint_url(config.host, config.bind_port)
        self._server: Server | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._inputs: dict[ua.NodeId, str] = {}
        self._writes: asyncio.Queue[dict[str, Any] | None] | None = None

    def _apply(self, changes: dict[str, Any]) -> None:
        if self._writes is not None:
            self._writes.put_nowait(changes)

    def _stopping(self) -> None:
        if self._writes is not None:
            self._writes.put_nowait(None)

    async def _serve(self) -> None:
        self._writes = asyncio.Queue()
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("Lepton Inspect station")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        server.allow_remote_admin(False)  # (asyncua's default lets a client named "admin" write anything)
        ns = await server.register_namespace(self.config.namespace)
        station = await server.nodes.objects.add_object(_node_id("Station", ns), ua.QualifiedName("Station", ns))
        values = self.handshake.values()
        for sig in SIGNALS:
            node = await station.add_variable(
                _node_id(f"Station.{sig.name}", ns),
                ua.QualifiedName(sig.name, ns),
                ua.Variant(values[sig.name], _VARIANTS[sig.kind]),
            )
            await node.write_attribute(AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(sig.doc))))
            if not sig.output:
                await node.set_writable()
                self._inputs[node.nodeid] = sig.name
            self._nodes[sig.name] = node.nodeid
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        self._server = server
        await server.start()
        try:
            self._started.set()
            while (changes := await self._writes.get()) is not None:
                for name, value in changes.items():
                    await server.write_attribute_value(
                        self._nodes[name], ua.DataValue(ua.Variant(value, _VARIANTS[KINDS[name]]))
                    )
        finally:
            await server.stop()

    def _on_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        if not event.is_external:
            return
        for item, status in zip(event.request_params.NodesToWrite, event.response_params or (), strict=False):
            name = self._inputs.get(item.NodeId)
            if name and item.AttributeId == AttributeIds.Value and status.is_good():
                self.handshake.write(name, item.Value.Value.Value)
