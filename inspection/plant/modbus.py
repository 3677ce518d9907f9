"""The PLC handshake over Modbus TCP: a pymodbus server on its own thread and event loop.

Register map (0-based addresses, any unit id; README "PLC handshake"):

- coils (PLC writes): 0 Trigger, 1 ResultAck
- holding registers (PLC writes): 0 RecipeIndex (uint16), 1-16 LotId (string)
- discrete inputs (PLC reads): 0 Ready, 1 Busy, 2 ResultReady, 3 ResultOK, 4 ResultNG, 5 Error, 6 Heartbeat
- input registers (PLC reads): 0 ErrorCode (uint16), 1-2 Score (float32), 3-4 PartSeq (uint32),
  5 RecipeIndexActive (uint16), 6-7 RecipeVersion (uint32), 8-23 PartId, 24-39 DefectClass, 40-55 RecipeName

32- and float values: high word first, each word big-endian (ABCD). Strings: 16 registers, two ASCII
characters per register (the first in the high byte), padded with NUL, cut at 32 characters.
Client writes are seen through the device's access hook, every write once and in order.
No encryption or login (Modbus TCP has none): for an isolated machine network only.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from inspection.plant.handshake import Handshake
from inspection.plant.server import PlcServer
from inspection.plant.signals import STRING_CHARS
from inspection.settings.plc import PlcConfig

COILS = ("Trigger", "ResultAck")
DISCRETE_INPUTS = ("Ready", "Busy", "ResultReady", "ResultOK", "ResultNG", "Error", "Heartbeat")
STRING_REGS = STRING_CHARS // 2
# name: (first register, type); "str" takes STRING_REGS registers, "u32" and "f32" two.
HOLDING = {"RecipeIndex": (0, "u16"), "LotId": (1, "str")}
INPUT_REGS = {
    "ErrorCode": (0, "u16"),
    "Score": (1, "f32"),
    "PartSeq": (3, "u32"),
    "RecipeIndexActive": (5, "u16"),
    "RecipeVersion": (6, "u32"),
    "PartId": (8, "str"),
    "DefectClass": (24, "str"),
    "RecipeName": (40, "str"),
}
_WIDTH = {"u16": 1, "u32": 2, "f32": 2, "str": STRING_REGS}
HOLDING_COUNT = 1 + STRING_REGS
INPUT_COUNT = 40 + STRING_REGS
_READ_DISCRETE, _READ_INPUT = 2, 4
_WRITE_COILS, _WRITE_HOLDING = (5, 15), (6, 16)


def encode(kind: str, value: Any) -> list[int]:
    """A value as registers (see the module's map)."""
    if kind == "u16":
        return [int(value) & 0xFFFF]
    if kind == "u32":
        v = int(value) & 0xFFFF_FFFF
        return [v >> 16, v & 0xFFFF]
    if kind == "f32":
        hi, lo = struct.unpack(">HH", struct.pack(">f", float(value)))
        return [hi, lo]
    raw = str(value).encode("ascii", "replace")[:STRING_CHARS].ljust(STRING_CHARS, b"\0")
    return list(struct.unpack(f">{STRING_REGS}H", raw))


def decode_string(regs: list[int]) -> str:
    return struct.pack(f">{len(regs)}H", *regs).split(b"\0", 1)[0].decode("ascii", "replace")


def _bits_to_regs(bits: list[bool], count: int) -> list[int]:
    regs = [0] * count
    for i, bit in enumerate(bits):
        if bit:
            regs[i // 16] |= 1 << (i % 16)
    return regs


class ModbusServer(PlcServer):
    """The register map served at `endpoint`."""

    what = "Modbus server"
    thread_name = "lepton-plc-modbus"
    START_TIMEOUT_S = 30.0

    def __init__(self, config: PlcConfig, handshake: Handshake) -> None:
        super().__init__()
        self.config = config
        self.handshake = handshake
        host = f"[{config.host}]" if ":" in config.host else config.host
        self.endpoint = f"modbus-tcp://{host}:{config.bind_port}"
        self._values = handshake.values()
        self._discrete: list[int] = []
        self._input: list[int] = []
        self._encode()
        self._stop: asyncio.Event | None = None

    def _why(self, exc: BaseException) -> str:
        return "the port is in use, or the address is not this machine's"  # (pymodbus says no more)

    def _stopping(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _apply(self, changes: dict[str, Any]) -> None:
        self._values.update(changes)
        self._encode()

    def _encode(self) -> None:
        v = self._values
        self._discrete = _bits_to_regs([bool(v[name]) for name in DISCRETE_INPUTS], 1)
        regs = [0] * INPUT_COUNT
        for name, (at, kind) in INPUT_REGS.items():
            regs[at : at + _WIDTH[kind]] = encode(kind, v[name])
        self._input = regs

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        holding = [0] * HOLDING_COUNT
        for name, (at, kind) in HOLDING.items():
            holding[at : at + _WIDTH[kind]] = encode(kind, self._values[name])
        device = SimDevice(
            id=0,
            action=self._access,
            simdata=(
                [SimData(0, count=1, values=0, datatype=DataType.BITS)],
                [SimData(0, count=1, values=0, datatype=DataType.BITS)],
                [SimData(0, values=holding, datatype=DataType.REGISTERS)],
                [SimData(0, count=INPUT_COUNT, values=0, datatype=DataType.REGISTERS)],
            ),
        )
        server = ModbusTcpServer(device, address=(self.config.host, self.config.bind_port))
        await server.serve_forever(background=True)
        try:
            self._started.set()
            await self._stop.wait()
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]  # (pymodbus leaves it untyped)

    async def _access(
        self,
        func_code: int,
        start: int,
        address: int,
        _count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> None:
        """Every request: outputs filled in before a read; inputs handed to the handshake on a write."""
        if func_code == _READ_DISCRETE:
            registers[: len(self._discrete)] = self._discrete
        elif func_code == _READ_INPUT:
            registers[:] = self._input
        elif values is not None and func_code in _WRITE_COILS:
            for i, value in enumerate(values):
                if 0 <= address + i < len(COILS):
                    self.handshake.write(COILS[address + i], bool(value))
        elif values is not None and func_code in _WRITE_HOLDING:
            after = list(registers)
            after[address - start : address - start + len(values)] = values
            for name, (at, kind) in HOLDING.items():
                if address < at + _WIDTH[kind] and at < address + len(values):  # written
                    # (a string written in pieces is taken only when written whole: no half lot id in the rows)
                    if kind == "str" and not (address <= at and at + _WIDTH[kind] <= address + len(values)):
                        continue
                    regs = after[at : at + _WIDTH[kind]]
                    self.handshake.write(name, decode_string(regs) if kind == "str" else regs[0])
