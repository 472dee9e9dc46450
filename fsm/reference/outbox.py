"""The client's durable state in SQLite: its messages and its pending-retry list.

Two tables:

``messages``
    Every message the user sent, in order, with its client key (which doubles as
    the client message id on the wire where the design sends ids), its text, the
    message machine's state and the WebSocket attempts made at it (where a budget
    counts them). This is the chat's local history: a client that is killed and
    started again shows the same messages, with the same attempts left.
``pending``
    The pending-retry list (the seed's ``pendingRetryMessages``): the keys of the
    messages held for a retry, in the order they joined it (``seq``: an ordered
    queue writes its oldest first, and a restarted client keeps that order).
    Designs with the write-ahead put a message here in the same transaction that
    records it, before any transport sees it.

Every change commits at once. The database runs in WAL mode with
``synchronous=NORMAL``: a commit survives the process being killed (not a power
cut), which is the failure this store is for.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from fsm.model.vocabulary import MessageState

__all__ = ["Outbox", "StoredMessage"]

_STATES = {s.value: s for s in MessageState}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    ws_tries INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE REFERENCES messages(key)
);
"""


@dataclass(frozen=True)
class StoredMessage:
    key: str
    body: str
    state: MessageState
    held: bool
    ws_tries: int = 0


class Outbox:
    """The client's SQLite store (one file per client)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @property
    def identity(self) -> str:
        """A name for the client that owns this store, the same after a restart."""
        return hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:16]

    def close(self) -> None:
        self._db.close()

    def accept(self, key: str, body: str, state: MessageState, *, hold: bool) -> None:
        """Record a message the user sent and, with ``hold``, put it in the
        pending-retry list, in one transaction (the write-ahead)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO messages (key, body, state) VALUES (?, ?, ?)",
                (key, body, state.value),
            )
            if hold:
                self._db.execute("INSERT INTO pending (key) VALUES (?)", (key,))

    def set_state(self, key: str, state: MessageState, *, ws_tries: int | None = None) -> None:
        """The message's state and (if given) the WebSocket attempts made at it."""
        if ws_tries is None:
            self._db.execute("UPDATE messages SET state = ? WHERE key = ?", (state.value, key))
        else:
            self._db.execute(
                "UPDATE messages SET state = ?, ws_tries = ? WHERE key = ?",
                (state.value, ws_tries, key),
            )

    def hold(self, key: str, held: bool) -> None:
        """Put ``key`` at the end of the pending-retry list (where it is already
        held, it keeps its place), or take it out."""
        if held:
            self._db.execute("INSERT OR IGNORE INTO pending (key) VALUES (?)", (key,))
        else:
            self._db.execute("DELETE FROM pending WHERE key = ?", (key,))

    def release_all(self) -> None:
        self._db.execute("DELETE FROM pending")

    def load(self) -> list[StoredMessage]:
        """Every message, in the order the user sent them."""
        rows = self._db.execute(
            "SELECT m.key, m.body, m.state, p.key IS NOT NULL, m.ws_tries "
            "FROM messages m LEFT JOIN pending p ON p.key = m.key ORDER BY m.seq"
        ).fetchall()
        return [StoredMessage(k, b, _STATES[s], bool(h), t) for k, b, s, h, t in rows]

    def held_in_order(self) -> list[str]:
        """The keys in the pending-retry list, in the order they joined it."""
        return [k for (k,) in self._db.execute("SELECT key FROM pending ORDER BY seq")]
