"""The PLC handshake over OPC UA: a real asyncua client on loopback drives the running station on
the pylon emulator (the software trigger stands in for the part sensor) and real SQLite file. What
every transport must do is the contract suite's (test_plc_contract.py); here is what only OPC UA has."""

from __future__ import annotations

import pytest
from asyncua import ua
from asyncua.sync import Client

from tests.integration.plc_clients import OpcUaPlc
from tests.integration.plc_station import check_record, drive_handshake, plc_station


def test_opcua_client_drives_trigger_result_ack_recipe_lot_and_heartbeat(tmp_path, samples):
    with plc_station(tmp_path, samples, "opcua") as (line, link, db):
        assert link.endpoint.startswith("opc.tcp://127.0.0.1:") and link.endpoint.endswith("/lepton/")
        with Client(link.endpoint) as client:
            parts = drive_handshake(OpcUaPlc(client), line)
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
        link.close()
        check_record(db, parts, line)
