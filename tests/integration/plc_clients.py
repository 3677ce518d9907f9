"""A PLC's view of the station through each transport's real client: read a signal, write an input, try
to write an output. The contract suite (test_plc_contract.py) and the end-to-end tests on the pylon
emulator drive the handshake through these, the same calls over OPC UA and Modbus TCP."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

from asyncua import ua
from asyncua.sync import Client
from pymodbus.client import ModbusTcpClient

from inspection.plant.link import PlcLink
from inspection.plant.signals import SIGNALS, Kind

NAMESPACE = "urn:lepton-inspect:plc"
_VARIANTS = {
    Kind.BOOL: ua.VariantType.Boolean,
    Kind.INT: ua.VariantType.Int32,
    Kind.FLOAT: ua.VariantType.Double,
    Kind.STR: ua.VariantType.String,
}
_OPCUA_TYPES = {s.name: _VARIANTS[s.kind] for s in SIGNALS}

# The register map (README "PLC handshake"), as a PLC programmer reads it.
COILS = {"Trigger": 0, "ResultAck": 1}
DISCRETE = {"Ready": 0, "Busy": 1, "ResultReady": 2, "ResultOK": 3, "ResultNG": 4, "Error": 5, "Heartbeat": 6}
HOLDING = {"RecipeIndex": (0, "u16"), "LotId": (1, "str")}
INPUT = {
    "ErrorCode": (0, "u16"),
    "Score": (1, "f32"),
    "PartSeq": (3, "u32"),
    "RecipeIndexActive": (5, "u16"),
    "RecipeVersion": (6, "u32"),
    "PartId": (8, "str"),
    "DefectClass": (24, "str"),
    "RecipeName": (40, "str"),
}
WIDTH = {"u16": 1, "u32": 2, "f32": 2, "str": 16}
HOLDING_COUNT = 17  # RecipeIndex and the 16 registers of LotId


class PlcClient(Protocol):
    def read(self, name: str) -> Any: ...
    def write(self, name: str, value: Any) -> None: ...
    def write_output(self, name: str, value: Any) -> None: ...


class OpcUaPlc:
    """A PLC's view: the Station object's variables by browse name."""

    def __init__(self, client: Client) -> None:
        ns = client.get_namespace_index(NAMESPACE)
        station = client.nodes.objects.get_child(f"{ns}:Station")
        self.nodes = {node.read_browse_name().Name: node for node in station.get_children()}

    def read(self, name: str) -> Any:
        return self.nodes[name].read_value()

    def write(self, name: str, value: Any) -> None:
        self.nodes[name].write_value(ua.DataValue(ua.Variant(value, _OPCUA_TYPES[name])))

    def write_output(self, name: str, value: Any) -> None:
        """An output's variable is read-only for clients: the server refuses the write."""
        try:
            self.write(name, value)
        except ua.UaStatusCodeError as exc:
            assert "BadUserAccessDenied" in str(exc), exc
        else:
            raise AssertionError(f"the server took a client's write of the output {name}")


class ModbusPlc:
    """A PLC's view: the documented register map, read with pymodbus's own decoders."""

    def __init__(self, client: ModbusTcpClient) -> None:
        self.c = client
        self.types = {"u32": client.DATATYPE.UINT32, "f32": client.DATATYPE.FLOAT32, "str": client.DATATYPE.STRING}

    def _ok(self, response: Any) -> Any:
        assert not response.isError(), response
        return response

    def _decode(self, regs: list[int], kind: str) -> Any:
        if kind == "u16":
            return regs[0]
        value = self.c.convert_from_registers(regs, data_type=self.types[kind])
        return value.rstrip("\0") if isinstance(value, str) else value

    def read(self, name: str) -> Any:
        if name in DISCRETE:
            return self._ok(self.c.read_discrete_inputs(DISCRETE[name], count=1)).bits[0]
        if name in COILS:
            return self._ok(self.c.read_coils(COILS[name], count=1)).bits[0]
        at, kind = INPUT[name] if name in INPUT else HOLDING[name]
        read = self.c.read_input_registers if name in INPUT else self.c.read_holding_registers
        return self._decode(self._ok(read(at, count=WIDTH[kind])).registers, kind)

    def write(self, name: str, value: Any) -> None:
        if name in COILS:
            self._ok(self.c.write_coil(COILS[name], bool(value)))
        elif name == "RecipeIndex":
            self._ok(self.c.write_register(HOLDING[name][0], int(value)))
        else:  # LotId: all 16 registers in one request
            regs = self.c.convert_to_registers(value, data_type=self.c.DATATYPE.STRING)
            self._ok(self.c.write_registers(HOLDING[name][0], regs + [0] * (16 - len(regs))))

    def write_output(self, name: str, value: Any) -> None:
        """Outputs are discrete inputs and input registers, which no Modbus function writes: the closest a
        client comes is the writable table past the inputs (coils after Trigger and ResultAck, holding
        registers after LotId), which the station ignores or refuses."""
        if name in DISCRETE:
            self.c.write_coil(len(COILS) + DISCRETE[name], bool(value))
        else:
            self.c.write_register(HOLDING_COUNT + INPUT[name][0], int(value) if isinstance(value, int) else 0)


@contextlib.contextmanager
def plc_client(link: PlcLink) -> Iterator[PlcClient]:
    """A connected client of the link's transport, closed after."""
    if link.endpoint.startswith("opc.tcp://"):
        with Client(link.endpoint) as client:
            yield OpcUaPlc(client)
        return
    host, port = link.endpoint.removeprefix("modbus-tcp://").rsplit(":", 1)
    client = ModbusTcpClient(host, port=int(port))
    assert client.connect(), f"cannot connect to {link.endpoint}"
    try:
        yield ModbusPlc(client)
    finally:
        client.close()
