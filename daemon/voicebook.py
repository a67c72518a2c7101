"""The enrolled voices in the database (the only code that reads or writes ``voices`` rows),
reached as ``Store.voices``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select

from daemon import db
from daemon.models import VoiceRow
from daemon.voices import Voice


def _voice(row: Any) -> Voice:
    return Voice(
        name=row.name,
        embedding=tuple(float(x) for x in row.embedding),
        weights=row.weights,
        seconds=float(row.seconds),
        files=tuple(str(f) for f in row.files),
    )


class VoiceBook:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[Voice]:
        """Every enrolled voice, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(VoiceRow).order_by(VoiceRow.name)).all()
        return [_voice(r) for r in rows]

    def get(self, name: str) -> Voice | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(VoiceRow).where(VoiceRow.name == name)).first()
        return None if row is None else _voice(row)

    def put(self, voice: Voice, now: datetime) -> None:
        """Enroll ``voice``, or replace the voice of that name."""
        values = {
            "embedding": list(voice.embedding),
            "weights": voice.weights,
            "seconds": voice.seconds,
            "files": list(voice.files),
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            stmt = db.insert(conn)(VoiceRow).values(name=voice.name, created_at=now, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))

    def remove(self, name: str) -> bool:
        """Forget the voice ``name``; False when there was none."""
        with self.engine.begin() as conn:
            return conn.execute(delete(VoiceRow).where(VoiceRow.name == name)).rowcount == 1
