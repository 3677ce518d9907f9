"""The PLC handshake over Modbus TCP: a real pymodbus client on loopback drives the running station
on the pylon emulator and a real SQLite file, reading the register map with pymodbus's own decoders.
What every transport must do is the contract suite's (test_plc_contract.py); here is what only Modbus has."""

from __future__ import annotations

from pymodbus.client import ModbusTcpClient

from tests.integration.plc_clients import HOLDING, ModbusPlc
from tests.integration.plc_station import check_record, drive_handshake, plc_station, until


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
        link.close()
        check_record(db, parts, line)
