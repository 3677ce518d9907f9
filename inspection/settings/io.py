"""[io] and [reject] in the station config: the trigger input's wiring and the reject output's gate, checked."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from camera.base import TRIGGER_ACTIVATIONS, IoSettings
from inspection.errors import ConfigError
from inspection.settings.parse import choice, float_in, int_in, show

log = logging.getLogger(__name__)

AFTER = ("time", "encoder")  # reject.after
_LINE = re.compile(r"(Line|Out)[1-9][0-9]?")  # Line1..: SFNC; Out1..: outputs of ace GigE cameras
_USER_OUTPUT = re.compile(r"UserOutput[1-9][0-9]?")
# Checked ranges of [io] and [reject].
MAX_DEBOUNCE_US = 1_000_000.0
MAX_TRIGGER_DELAY_US = 1_000_000.0
MAX_DELAY_MS = 60_000.0
MAX_PULSE_MS = 10_000.0
MAX_ENCODER_COUNTS = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class IoConfig:
    """[io]: the camera's hardware trigger input."""

    trigger_line: str = "Line1"
    trigger_activation: str = "RisingEdge"
    debounce_us: float = 0.0  # 0: the camera's own
    trigger_delay_us: float = 0.0  # 0: the camera's own


@dataclasses.dataclass(frozen=True)
class RejectConfig:
    """[reject]: the reject output and when a part reaches the gate."""

    enabled: bool = False
    line: str = "Line2"
    output: str = "UserOutput1"
    inverted: bool = False
    after: str = "time"  # "time": delay_ms after the trigger; "encoder": encoder_counts after it
    delay_ms: float = 500.0
    encoder_counts: int = 1000
    pulse_ms: float = 20.0
    ready_margin_ms: float = 5.0
    reject_review: bool = True  # REVIEW parts are rejected too (NG always are)


def io_settings(io: IoConfig, reject: RejectConfig) -> IoSettings:
    """The camera's IoSettings for these tables (no output line unless the reject is enabled)."""
    return IoSettings(
        trigger_line=io.trigger_line,
        trigger_activation=io.trigger_activation,
        debounce_us=io.debounce_us or None,
        trigger_delay_us=io.trigger_delay_us or None,
        reject_line=reject.line if reject.enabled else None,
        reject_output=reject.output,
        reject_inverted=reject.inverted,
    )


def parse_io_reject(io: dict[str, Any], reject: dict[str, Any], where: str) -> tuple[IoConfig, RejectConfig]:
    """[io] and [reject] of a merged config (types already checked), ranges and names checked here."""
    io_config = _io(io, where)
    reject_config = _reject(reject, where)
    _check_together(io_config, reject_config, where)
    return io_config, reject_config


def _name(value: str, key: str, where: str, pattern: re.Pattern[str], example: str) -> str:
    """A camera line or output name, as `pattern` says."""
    if not pattern.fullmatch(value):
        raise ConfigError(f"{key} in {where} must name a camera {example}, not {show(value)}.")
    return value


def _io(io: dict[str, Any], where: str) -> IoConfig:
    """[io]: the trigger input's line, edge, debounce and delay."""
    return IoConfig(
        trigger_line=_name(io["trigger_line"], "io.trigger_line", where, _LINE, 'line such as "Line1"'),
        trigger_activation=choice(io["trigger_activation"], "io.trigger_activation", where, TRIGGER_ACTIVATIONS),
        debounce_us=float_in(
            io["debounce_us"],
            "io.debounce_us",
            where,
            0.0,
            MAX_DEBOUNCE_US,
            rule=f"a time in microseconds from 0 (the camera's own) to {MAX_DEBOUNCE_US:,.0f}",
        ),
        trigger_delay_us=float_in(
            io["trigger_delay_us"],
            "io.trigger_delay_us",
            where,
            0.0,
            MAX_TRIGGER_DELAY_US,
            rule=f"a time in microseconds from 0 (the camera's own) to {MAX_TRIGGER_DELAY_US:,.0f}",
        ),
    )


def _reject(r: dict[str, Any], where: str) -> RejectConfig:
    """[reject]: the output, when a part reaches the gate and the pulse."""
    return RejectConfig(
        enabled=r["enabled"],
        line=_name(r["line"], "reject.line", where, _LINE, 'output line such as "Line2"'),
        output=_name(r["output"], "reject.output", where, _USER_OUTPUT, 'user output such as "UserOutput1"'),
        inverted=r["inverted"],
        after=choice(r["after"], "reject.after", where, AFTER),
        delay_ms=float_in(
            r["delay_ms"],
            "reject.delay_ms",
            where,
            0.0,
            MAX_DELAY_MS,
            lo_open=True,
            rule=f"a time in milliseconds above 0 and at most {MAX_DELAY_MS:,.0f}",
        ),
        encoder_counts=int_in(r["encoder_counts"], "reject.encoder_counts", where, 1, MAX_ENCODER_COUNTS),
        pulse_ms=float_in(
            r["pulse_ms"],
            "reject.pulse_ms",
            where,
            1.0,
            MAX_PULSE_MS,
            rule=f"a time in milliseconds from 1 to {MAX_PULSE_MS:,.0f}",
        ),
        ready_margin_ms=float_in(
            r["ready_margin_ms"],
            "reject.ready_margin_ms",
            where,
            0.0,
            MAX_DELAY_MS,
            rule=f"a time in milliseconds from 0 to {MAX_DELAY_MS:,.0f}",
        ),
        reject_review=r["reject_review"],
    )


def _check_together(io: IoConfig, reject: RejectConfig, where: str) -> None:
    """What [io] and an enabled [reject] must agree on: separate lines, and a margin a part can make."""
    if reject.enabled and reject.line == io.trigger_line:
        raise ConfigError(f"reject.line in {where} must not be the trigger line io.trigger_line ({reject.line!r}).")
    if reject.enabled and reject.after == "time" and reject.ready_margin_ms >= reject.delay_ms:
        raise ConfigError(
            f"reject.ready_margin_ms ({reject.ready_margin_ms:g}) must be below reject.delay_ms "
            f"({reject.delay_ms:g}) in {where}, or every part would miss the gate."
        )
