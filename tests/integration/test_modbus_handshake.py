"""The PLC handshake over Modbus TCP: a real pymodbus client on loopback drives the running station
on the pylon emulator and a real SQLite file, reading the register map with pymodbus's own decoders."""

from __future__ import annotations

from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from inspection.plant.handshake import PlcError
from inspection.plant.link import start_plc
from tests.integration.plc_station import check_record, drive_handshake, plc_station, until

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


class ModbusPlc:
    """A PLC's view: the documented register map (README "PLC handshake")."""

    def __init__(self, client: ModbusTcpClient) -> None:
        self.c = client
        self.types = {"u32": client.DATATYPE.UINT32, "f32": client.DATATYPE.FLOAT32, "str": client.DATATYPE.STRING}

    def _ok(self, response):
        assert not response.isError(), response
        return response

    def _decode(self, regs: list[int], kind: str) -> Any:
        if kind == "u16":
            return regs[0]
        value = self.c.convert_from_registers(regs, data_type=self.types[kind])
        return value.rstrip("\0") if kind == "str" else value

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


def test_modbus_client_drives_trigger_result_ack_recipe_lot_and_heartbeat(tmp_path, samples):
    with plc_station(tmp_path, samples, "modbus") as (line, link, db):
        host, port = link.endpoint.removeprefix("modbus-tcp://").rsplit(":", 1)
        assert host == "127.0.0.1"
        client = ModbusTcpClient(host, port=int(port))
        assert client.connect()
        try:
            plc = ModbusPlc(client)
            parts = drive_handshake(plc, line)
            assert plc.read("LotId") == "LOT-7" and plc.read("RecipeIndex") == 9  # what the PLC wrote stays readable
            assert plc.read("ErrorCode") == 0 and isinstance(plc.read("Score"), float)
            assert plc.read("PartId") == parts[-1].part_id
            # A lot id written one register at a time (function 6) is not taken half written.
            client.write_register(HOLDING["LotId"][0], 0x5858)  # "XX" over the first two characters
            assert not until(lambda: line.lot_id != "LOT-7", timeout_s=1.0)
        finally:
            client.close()
        with pytest.raises(PlcError) as err:
            start_plc(line, link.handshake.config)
        assert "\n" not in str(err.value) and "in use" in str(err.value)
        link.close()
        again = start_plc(line, link.handshake.config)  # the port is free once closed
        assert again is not None
        again.close()
        check_record(db, parts, line)
