"""The line pushes its state changes (runs, changeovers, alarms) through its event hub, and a
changeover - the one core function every entry point uses - checks who asked and is audited."""

from __future__ import annotations

import json

import pytest

from inspection.access import audit, users
from inspection.errors import PermissionDenied
from inspection.runtime.events import AlarmChanged, RunStateChanged, SetupChanged
from models.base import Thresholds
from tests.fakes import FakeInspector

ALL_NG = Thresholds(0.0, 1.0, 1e9)  # every part scores above 1: NG


def test_a_run_publishes_its_states_from_start_to_stop(make_line):
    line = make_line()
    events = []
    line.events.subscribe(events.append)
    runner = line.start(max_parts=3)
    assert runner.wait(30)
    line.stop()
    states = [(e.run_id, e.state) for e in events if isinstance(e, RunStateChanged)]
    assert states[0] == (runner.run_id, "running")
    assert states[-1] == (runner.run_id, "idle")
    assert all(a != b for a, b in zip(states, states[1:], strict=False))  # a change each, never a repeat


def test_a_failing_subscriber_never_stops_the_line(make_line):
    line = make_line()

    def broken(event):
        raise RuntimeError("a subscriber's bug")

    line.events.subscribe(broken)
    runner = line.start(max_parts=5)
    assert runner.wait(30)
    assert line.stop().parts == 5


def test_alarms_raised_and_acknowledged_are_published(make_line):
    line = make_line(inspector=FakeInspector(thresholds=ALL_NG))
    events = []
    unsubscribe = line.events.subscribe(events.append)
    runner = line.start(max_parts=12)
    assert runner.wait(30)
    line.alarms.check()
    line.stop()
    raised = [e for e in events if isinstance(e, AlarmChanged) and e.active]
    assert [e.kind for e in raised].count("consecutive_ng") == 1
    alarm = next(a for a in line.alarms.active() if a.kind == "consecutive_ng")
    line.alarms.acknowledge([alarm.event_id])
    assert events[-1] == AlarmChanged("consecutive_ng", alarm.message, active=False)
    unsubscribe()
    line.alarms.acknowledge()  # (the rest) no longer heard
    assert events[-1] == AlarmChanged("consecutive_ng", alarm.message, active=False)


def test_a_changeover_needs_a_user_who_may_run_the_line_and_is_audited_and_published(make_line, tmp_path):
    line = make_line()
    admin = users.create_first_admin(line.store, "ada", "correct horse")
    qa = users.create_user(line.store, admin, "quinn", "qa", "correct horse")
    operator = users.create_user(line.store, admin, "otto", "operator", "correct horse")
    recipe = tmp_path / "b.toml"
    recipe.write_text('name = "prod-b"\n[camera]\npixel_format = "Mono8"\n', encoding="utf-8")
    events = []
    line.events.subscribe(events.append)
    switches_before = [e for e in audit.entries(line.store) if e.action == "line_switched"]

    with pytest.raises(PermissionDenied):
        line.change_recipe(recipe, by=qa)
    assert line.recipe.name != "prod-b" and not events
    assert [e for e in audit.entries(line.store) if e.action == "line_switched"] == switches_before

    line.change_recipe(recipe, by=operator)
    assert line.recipe.name == "prod-b"
    assert [e for e in events if isinstance(e, SetupChanged)] == [
        SetupChanged("prod-b", line.recipe_version, line.model_version_id)
    ]
    entry = audit.entries(line.store, limit=1)[0]
    assert (entry.who, entry.action, json.loads(entry.detail_json)["recipe"]) == ("otto", "line_switched", str(recipe))
    assert audit.verify(line.store).ok
