"""The HTTP face's keys in the database (the only code that reads or writes ``api_keys`` rows),
reached as ``Store.keys``.  Only a key's sha256 is kept: a stolen database holds no key.

A key is 256 random bits (:func:`new_key`), so a plain sha256 is enough to keep it (no salt or
slow hash: those defend guessable passwords); a request's key is found by its hash, and the
hashes are compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, update

from daemon import db
from daemon.models import ApiKey, WebSession

PREFIX = "tsk_"
"""Every key starts so (a secret scanner, or a person, can tell what it is)."""
USED_EVERY = timedelta(minutes=1)
"""A key's ``used_at`` is written at most this often (not on every request)."""


@dataclass(frozen=True)
class KeyRecord:
    name: str
    created_at: datetime
    used_at: datetime | None


def new_key() -> str:
    """A fresh key: :data:`PREFIX` and 43 URL-safe characters (256 random bits)."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyBook:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, name: str, key: str, now: datetime) -> bool:
        """Keep ``key`` (its hash) under ``name``; False when the name is taken (the unique
        index decides, not a look-up first)."""
        with self.engine.begin() as conn:
            stmt = db.insert(conn)(ApiKey).values(name=name, key_hash=digest(key), created_at=now)
            stmt = stmt.on_conflict_do_nothing(index_elements=["name"]).returning(ApiKey.id)
            made = conn.execute(stmt).first()
        return made is not None

    def all(self) -> list[KeyRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ApiKey.name, ApiKey.created_at, ApiKey.used_at).order_by(ApiKey.name)
            ).all()
        return [KeyRecord(n, c, u) for n, c, u in rows]

    def remove(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(ApiKey).where(ApiKey.name == name)).rowcount == 1

    def name_of(self, key: str, now: datetime) -> str | None:
        """The name of the key ``key``, or None when no such key is kept; notes its use."""
        wanted = digest(key)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ApiKey.id, ApiKey.name, ApiKey.key_hash, ApiKey.used_at).where(
                    ApiKey.key_hash == wanted
                )
            ).first()
        if row is None or not hmac.compare_digest(row.key_hash, wanted):
            return None
        if row.used_at is None or now - row.used_at >= USED_EVERY:
            with self.engine.begin() as conn:
                conn.execute(update(ApiKey).where(ApiKey.id == row.id).values(used_at=now))
        return str(row.name)


SESSION_DAYS = 14
"""A signed-in browser stays signed in this long (or until its key is removed)."""


@dataclass(frozen=True)
class Session:
    key_name: str
    csrf: str
    """The token every change the session asks for must carry."""


class Sessions:
    """The pages' sign-ins (``web_sessions`` rows): a browser holds a random token in an
    HttpOnly cookie; only its sha256 is kept, with the key it signed in with.  A session ends
    when it expires, when it signs out, or when its key is removed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, key_name: str, now: datetime) -> tuple[str, Session]:
        """A new session of ``key_name``: (the browser's token, the session)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        with self.engine.begin() as conn:
            conn.execute(delete(WebSession).where(WebSession.expires_at < now))
            conn.execute(
                db.insert(conn)(WebSession).values(
                    token_hash=digest(token),
                    key_name=key_name,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + timedelta(days=SESSION_DAYS),
                )
            )
        return token, Session(key_name, csrf)

    def get(self, token: str, now: datetime) -> Session | None:
        """The live session of ``token`` (its key still kept), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(WebSession.key_name, WebSession.csrf)
                .join(ApiKey, ApiKey.name == WebSession.key_name)
                .where(WebSession.token_hash == digest(token), WebSession.expires_at > now)
            ).first()
        return None if row is None else Session(str(row.key_name), str(row.csrf))

    def close(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(WebSession).where(WebSession.token_hash == digest(token)))
