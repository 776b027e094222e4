"""Database tables: one row per room (its folded state) and an append-only event log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


class RoomRow(SQLModel, table=True):
    """A room's current state, folded from its events. `version` guards concurrent writers."""

    __tablename__ = "rooms"

    sid: str = Field(primary_key=True, max_length=64)
    name: str = Field(index=True, max_length=256)
    phase: str = Field(index=True, max_length=32)
    state: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    version: int = 0
    last_created_at: int = 0
    last_rank: int = 0
    first_seen_at: float = Field(index=True)
    updated_at: float
    deadline_at: float | None = Field(default=None, index=True)
    recovery: str = Field(default="none", max_length=32)


class EventRow(SQLModel, table=True):
    """One received webhook (reduced, secret-free); `event_id` is unique, so a duplicate is a no-op."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_room_sid_seq", "room_sid", "seq"),)

    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=128)
    room_sid: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=64)
    name: str = Field(max_length=64)
    participant_identity: str | None = Field(default=None, max_length=256)
    created_at: int
    received_at: float
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
