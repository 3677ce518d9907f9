"""The record: SQLAlchemy 2 tables. Changes go through an Alembic migration in inspection/migrations.

Times are naive UTC. Relabels reference `inspections.id` and add history; the model's verdict in
`inspections` is never updated after it is written.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def new_uid() -> str:
    """A key unique across stations (uuid4 hex), for rows a plant database gathers from many."""
    return uuid.uuid4().hex


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    thresholds_json: Mapped[str] = mapped_column(Text)
    metadata_json: Mapped[str] = mapped_column(Text)
    first_used_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Shift(Base):
    __tablename__ = "shifts"
    __table_args__ = (UniqueConstraint("start_at", "name", name="uq_shifts_start_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    start_at: Mapped[dt.datetime] = mapped_column(DateTime)
    end_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Run(Base):
    """One start-to-stop of the line."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_uid", "uid", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    line: Mapped[str] = mapped_column(String(200))
    station: Mapped[str] = mapped_column(String(200))
    camera_spec: Mapped[str] = mapped_column(String(500))
    recipe: Mapped[str] = mapped_column(String(200))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    software_version: Mapped[str] = mapped_column(String(50))
    end_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    end_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    dropped_frames: Mapped[int | None] = mapped_column(
        Integer, nullable=True
    )  # never inspected: a full queue, skipped by the camera
    failed_grabs: Mapped[int | None] = mapped_column(Integer, nullable=True)  # incomplete or corrupt frames
    ok_below: Mapped[float | None] = mapped_column(Float, nullable=True)  # the thresholds in force for the run
    ng_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    recipe_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # NULL before 0009
    # The run's key across stations (a plant database holds the runs of many): uuid4 hex.
    uid: Mapped[str | None] = mapped_column(String(32), nullable=True, default=new_uid)


class RecipeVersion(Base):
    """Each distinct content of a recipe, numbered per recipe name in the order first used."""

    __tablename__ = "recipe_versions"
    __table_args__ = (
        UniqueConstraint("name", "sha256", name="uq_recipe_versions_name_sha256"),
        UniqueConstraint("name", "version", name="uq_recipe_versions_name_version"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content_json: Mapped[str] = mapped_column(Text)  # the recipe as merged over the default (canonical JSON)
    first_used_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Inspection(Base):
    """One inspected part: exactly one row per part, written once."""

    __tablename__ = "inspections"
    __table_args__ = (
        Index("ix_inspections_ts", "ts"),
        Index("ix_inspections_shift", "shift_id"),
        Index("ix_inspections_run", "run_id"),
        Index("ix_inspections_verdict", "verdict"),
        Index("ix_inspections_score", "score"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[dt.datetime] = mapped_column(DateTime)
    shift_id: Mapped[int] = mapped_column(ForeignKey("shifts.id"))
    camera_id: Mapped[str] = mapped_column(String(200))
    frame_id: Mapped[int] = mapped_column(Integer)
    recipe: Mapped[str] = mapped_column(String(200))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # NULL when the model failed
    verdict: Mapped[str] = mapped_column(String(10))
    classes_json: Mapped[str] = mapped_column(Text)  # ["pitting", ...]
    areas_json: Mapped[str] = mapped_column(Text)  # {"pitting": 123, ...} pixels
    image_path: Mapped[str | None] = mapped_column(String(500), nullable=True)  # relative to the DB's folder
    mask_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # NULL: the files the paths name are on disk (or none was kept); "missing": the image was to be
    # kept but could not be written (a full disk, a crash); "removed": deleted by the retention policy.
    # Storage facts, the only columns that change after the row is written.
    image_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # A station with several cameras writes one row per view; the views of a part share `seq`.
    view: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # which camera of the station
    part_verdict: Mapped[str | None] = mapped_column(
        String(10), nullable=True
    )  # the worst of the part's views; NULL before 0008
    recipe_version: Mapped[int | None] = mapped_column(
        Integer, nullable=True
    )  # recipe_versions.version of `recipe`; NULL before 0009
    lot_id: Mapped[str | None] = mapped_column(
        String(100), nullable=True
    )  # the lot the part belongs to (PLC or operator); NULL: none
    t_grab_ms: Mapped[float] = mapped_column(Float)
    t_queue_ms: Mapped[float] = mapped_column(Float)
    t_preprocess_ms: Mapped[float] = mapped_column(Float)
    t_infer_ms: Mapped[float] = mapped_column(Float)
    t_decide_ms: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


# Counting parts, not rows: a station of several cameras writes a row per view. One row of each part
# (its first view) carries the part's verdict; rows written before revision 0008 are their part's.
PART_ROW = Inspection.view == 0
PART_VERDICT = func.coalesce(Inspection.part_verdict, Inspection.verdict)


class Relabel(Base):
    """An engineer's judgement of a part, added as history: the model's verdict in `inspections`
    is never changed; a part's current label is its latest relabel."""

    __tablename__ = "relabels"
    __table_args__ = (
        Index("ix_relabels_inspection", "inspection_id"),
        Index("ix_relabels_inspection_at", "inspection_id", "at", unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"))
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    who: Mapped[str] = mapped_column(String(200))
    previous_verdict: Mapped[str] = mapped_column(
        String(10)
    )  # the current label before this one (at first the model's verdict)
    verdict: Mapped[str] = mapped_column(String(10))  # OK or NG: a person decides, so never REVIEW
    classes_json: Mapped[str] = mapped_column(Text)  # ["pitting", ...]; [] for OK
    mask_path: Mapped[str | None] = mapped_column(
        String(500), nullable=True
    )  # the engineer's mask, relative to the DB's folder
    comment: Mapped[str] = mapped_column(Text)


class ModelPromotion(Base):
    """An engineer's explicit choice of the model a recipe runs (promote) or the return to the one
    before (rollback): added as history; a recipe's model is its latest row's package."""

    __tablename__ = "model_promotions"
    __table_args__ = (Index("ix_model_promotions_recipe", "recipe"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    who: Mapped[str] = mapped_column(String(200))
    recipe: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20))  # promote or rollback
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    package_path: Mapped[str] = mapped_column(
        String(1000)
    )  # a file name in models/ of the user data folder, or @recipe
    previous_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    previous_path: Mapped[str | None] = mapped_column(
        String(1000), nullable=True
    )  # the package it replaced (same form)
    comment: Mapped[str] = mapped_column(Text)
    evaluation_json: Mapped[str | None] = mapped_column(
        Text, nullable=True
    )  # candidate against current, when promoted from a comparison


class Event(Base):
    """The station's event log: alarms, camera loss, model changes, runs starting and ending."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_ts", "ts"), Index("ix_events_uid", "uid", unique=True))
    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[dt.datetime] = mapped_column(DateTime)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    level: Mapped[str] = mapped_column(String(10))  # info, warning, alarm
    kind: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    uid: Mapped[str | None] = mapped_column(String(32), nullable=True, default=new_uid)  # the key across stations


class User(Base):
    """A person who may use the station, with one role (operator, engineer, qa, admin). Never
    deleted (the audit trail names them): disabled instead."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))  # scrypt$n=..,r=..,p=..$salt$key (inspection.access.users)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class AuditEntry(Base):
    """The audit trail: every change that touches quality, append-only (triggers refuse UPDATE and
    DELETE), each entry chained to the one before by a hash (inspection.access.audit)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)  # 1, 2, 3 ... without gaps: a gap is a deleted entry
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    who: Mapped[str] = mapped_column(String(64))  # a user name, or "station" for what the station noticed itself
    action: Mapped[str] = mapped_column(String(50))  # login, relabel, promote, thresholds_changed, ...
    target: Mapped[str] = mapped_column(Text)  # what it touched: a part id, a recipe, a user name
    detail_json: Mapped[str] = mapped_column(Text)  # canonical JSON (sorted keys, no spaces)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ForwardState(Base):
    """How far a station's rows have been forwarded to a plant database (inspection.record.forwarding): per
    server and table, the highest local id the server has committed."""

    __tablename__ = "forward_state"
    server: Mapped[str] = mapped_column(String(500), primary_key=True)  # host:port/database
    table_name: Mapped[str] = mapped_column(String(50), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
