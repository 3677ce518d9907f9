"""A full disk and the image retention policy: rows are always written, images give way.

The full disk is real where the machine allows it: a 1 MB tmpfs mounted over the image folder
(root with CAP_SYS_ADMIN, as in CI's container); elsewhere those tests skip with the reason. The
free-space floor and the retention policy run on the real disk.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import sqlite3
import subprocess

import pytest
from sqlalchemy import select, update

from inspection.record.retention import Retention
from inspection.record.schema import Event, Inspection, Relabel
from inspection.record.store import utcnow
from inspection.runtime.status import RunnerState
from inspection.settings.config import RetentionConfig


@pytest.fixture
def small_disk():
    mounted = []

    def mount(path, size_kb: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True, text=True
        )
        if r.returncode:
            pytest.skip(
                f"a small real disk here is a tmpfs mount, which needs root with CAP_SYS_ADMIN ({r.stderr.strip()})"
            )
        mounted.append(path)

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def keep_every_image(line):
    line.setup = dataclasses.replace(line.setup, recipe=dataclasses.replace(line.recipe, save_ok_every=1))


def run(line, parts: int):
    runner = line.start(max_parts=parts)
    assert runner.wait(60)
    return line.stop(), runner


def test_a_full_disk_still_gets_every_row_and_the_line_goes_on(make_line, small_disk):
    line = make_line()
    keep_every_image(line)
    small_disk(line.store.images_dir, 1024)
    s, runner = run(line, 40)
    assert s.state is RunnerState.IDLE and s.parts == s.recorded == 40
    db = sqlite3.connect(line.store.path)
    rows = db.execute("select image_path, image_status from inspections").fetchall()
    base = line.store.path.parent
    on_disk = [p for p, status in rows if status is None]
    missing = [p for p, status in rows if status == "missing"]
    assert len(rows) == 40 and len(on_disk) + len(missing) == 40
    assert on_disk and missing  # some fitted, then the disk was full
    assert all((base / p).is_file() for p in on_disk)
    assert runner.writer.images_missing[0] == len(missing) and "No space left" in runner.writer.images_missing[1]
    line.alarms.check()
    alarm = next(a for a in line.alarms.active() if a.kind == "images")
    assert (
        "part images could not be saved" in alarm.message and "No space left" in alarm.message
    )  # raised once, while it ran


def test_below_the_free_space_floor_no_image_is_saved_rows_are_and_the_disk_alarm_fires(make_line):
    line = make_line()
    keep_every_image(line)
    low = dataclasses.replace(line.config.alarms, min_free_disk_mb=10**9)  # more than any disk has free
    line.config = dataclasses.replace(line.config, alarms=low)
    line.alarms.config = low
    s, runner = run(
        line, 80
    )  # (more than the 64 images that may wait for the disk: each skipped one gives its place back)
    assert s.state is RunnerState.IDLE and s.recorded == 80
    db = sqlite3.connect(line.store.path)
    assert (
        db.execute("select count(*) from inspections where image_status = 'missing' and image_path is null").fetchone()[
            0
        ]
        == 80
    )
    assert not line.store.images_dir.exists() or not any(line.store.images_dir.rglob("*.png"))
    line.alarms.check()
    assert "disk" in {a.kind for a in line.alarms.active()}


def test_retention_removes_good_images_first_then_old_rejects_never_rows_or_labelled_parts(make_line):
    line = make_line()
    keep_every_image(line)
    s, _ = run(line, 64)  # (enough megabytes for a limit in whole MB)
    store = line.store
    now = utcnow()
    with store.session() as sess:
        # The parts are older than retention's RECENT_S (whose images may still be on their way to disk).
        for row in sess.scalars(select(Inspection)):
            row.ts -= dt.timedelta(minutes=5)
        parts = sess.execute(
            select(Inspection.id, Inspection.verdict, Inspection.image_path).order_by(Inspection.id)
        ).all()
        oks = [p for p in parts if p.verdict == "OK"]
        rejects = [p for p in parts if p.verdict != "OK"]
        assert len(oks) >= 3 and len(rejects) >= 3, "the bundled samples give both good parts and rejects"
        labelled = oks[0]  # the oldest good part, but an engineer labelled it: its image trains the next model
        sess.add(
            Relabel(
                inspection_id=labelled.id,
                at=now,
                who="eng",
                previous_verdict="OK",
                verdict="OK",
                classes_json="[]",
                mask_path=None,
                comment="",
            )
        )
        old_rejects = rejects[: len(rejects) // 2]
        sess.execute(
            update(Inspection)
            .where(Inspection.id.in_([r.id for r in old_rejects]))
            .values(ts=now - dt.timedelta(days=40))
        )
        sess.commit()
    base = store.path.parent
    size = {p.id: (base / p.image_path).stat().st_size for p in parts}

    # 1. A limit that deleting three quarters of the good images' bytes meets (it goes HEADROOM below the limit):
    #    the oldest unlabelled good parts go, and nothing else.
    from inspection.record.retention import HEADROOM, folder_bytes

    used = folder_bytes(store.images_dir)
    good_bytes = sum(size[p.id] for p in oks[1:])
    limit_mb = math.ceil((used - 0.75 * good_bytes) / (1 - HEADROOM) / 2**20)
    assert limit_mb * 2**20 < used, "the images must be over the limit for this test"
    policy = Retention(store, RetentionConfig(max_image_mb=limit_mb, min_free_mb=0, keep_rejects_days=30))
    first = policy.run_once()
    gone = {
        i for (i,) in sqlite3.connect(store.path).execute("select id from inspections where image_status = 'removed'")
    }
    assert first.removed_images == len(gone) >= 1 and first.short_bytes == 0
    assert folder_bytes(store.images_dir) <= (1 - HEADROOM) * limit_mb * 2**20  # below the limit, with headroom
    assert labelled.id not in gone and not gone & {r.id for r in rejects}
    assert all(not (base / p.image_path).exists() for p in parts if p.id in gone)
    assert gone == {p.id for p in oks[1 : 1 + len(gone)]}  # oldest first

    # 2. A limit below what the images take: every unlabelled good image, then the old rejects go; the
    #    young rejects and the labelled part stay, and the pass says it fell short.
    policy = Retention(store, RetentionConfig(max_image_mb=0, min_free_mb=10**9, keep_rejects_days=30))
    second = policy.run_once()
    gone = {
        i for (i,) in sqlite3.connect(store.path).execute("select id from inspections where image_status = 'removed'")
    }
    assert gone == {p.id for p in oks[1:]} | {r.id for r in old_rejects}
    assert second.short_bytes > 0
    assert (base / labelled.image_path).is_file() and all(
        (base / r.image_path).is_file() for r in rejects if r not in old_rejects
    )
    with store.session() as sess:
        assert (
            sess.scalar(select(Inspection.id).order_by(Inspection.id.desc()).limit(1)) == parts[-1].id
        )  # no row deleted
        assert len(sess.scalars(select(Inspection.id)).all()) == s.parts
        messages = sess.scalars(select(Event.message).where(Event.kind == "retention")).all()
    assert len(messages) == 2 and "their rows stay" in messages[0] and "more should go" in messages[1]
    assert policy.run_once().removed_images == 0  # nothing left to delete; the shortfall is not said again
    with store.session() as sess:
        assert len(sess.scalars(select(Event.id).where(Event.kind == "retention")).all()) == 2
