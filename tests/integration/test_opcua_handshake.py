"""The PLC handshake over OPC UA: a real asyncua client on loopback drives the running station on
the pylon emulator (the software trigger stands in for the part sensor) and real SQLite file."""

from __future__ import annotations

from typing import Any

import pytest
from asyncua import ua
from asyncua.sync import Client

from inspection.plant.handshake import PlcError
from inspection.plant.link import start_plc
from tests.integration.plc_station import check_record, drive_handshake, plc_station

_TYPES = {
    "Trigger": ua.VariantType.Boolean,
    "ResultAck": ua.VariantType.Boolean,
    "RecipeIndex": ua.VariantType.Int32,
    "LotId": ua.VariantType.String,
    "Ready": ua.VariantType.Boolean,
}
NAMESPACE = "urn:lepton-inspect:plc"


class OpcUaPlc:
    """A PLC's view: the Station object's variables by browse name."""

    def __init__(self, client: Client) -> None:
        ns = client.get_namespace_index(NAMESPACE)
        station = client.nodes.objects.get_child(f"{ns}:Station")
        self.nodes = {node.read_browse_name().Name: node for node in station.get_children()}

    def read(self, name: str) -> Any:
        return self.nodes[name].read_value()

    def write(self, name: str, value: Any) -> None:
        self.nodes[name].write_value(ua.DataValue(ua.Variant(value, _TYPES[name])))


def test_opcua_client_drives_trigger_result_ack_recipe_lot_and_heartbeat(tmp_path, samples):
    with plc_station(tmp_path, samples, "opcua") as (line, link, db):
        assert link.endpoint.startswith("opc.tcp://127.0.0.1:") and link.endpoint.endswith("/lepton/")
        with Client(link.endpoint) as client:
            plc = OpcUaPlc(client)
            assert set(plc.nodes) >= {
                "Trigger",
                "ResultAck",
                "RecipeIndex",
                "LotId",
                "Ready",
                "Busy",
                "ResultReady",
                "ResultOK",
                "ResultNG",
                "DefectClass",
                "Score",
                "PartId",
                "Error",
                "ErrorCode",
                "Heartbeat",
            }
            parts = drive_handshake(plc, line)
            with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
                plc.write("Ready", True)  # outputs are read-only for clients
            signals = link.signals()
            assert signals["count_triggers"] == len(parts) and signals["count_results"] == len(parts)
            assert signals["LotId"] == "LOT-7" and signals["RecipeName"] == "prod-b"
        admin = Client(link.endpoint)  # (asyncua's servers let a user named "admin" write anything by default)
        admin.set_user("admin")
        admin.set_password("admin")
        try:
            with pytest.raises(ua.UaStatusCodeError, match="BadIdentityTokenRejected"):
                admin.connect()  # anonymous sessions only
        finally:
            admin.tloop.stop()
        # A second link on the same address is refused in one sentence; once closed, the port is free again.
        with pytest.raises(PlcError) as err:
            start_plc(line, link.handshake.config)
        assert str(err.value).count(".") >= 1 and "\n" not in str(err.value) and "in use" in str(err.value)
        link.close()
        again = start_plc(line, link.handshake.config)
        assert again is not None
        again.close()
        check_record(db, parts, line)
