"""What a test can read from a real client and server: the :class:`Observation`.

A composed-system state (:class:`~fsm.analysis.system.World`) holds things no
test can see: whether the socket under the client is really alive, whether the
server still owes a ``done`` on it, how many REST attempts failed. An
observation keeps only what a client and a test server expose:

* the client's ``isConnected`` flag (``connected`` and ``suspended_stale`` both
  read ``true``: a client cannot know its socket is dead);
* for each message, in the order the user sent them, its client-visible state
  (``unsent``, ``pending``, ``sent``, ``confirmed``, ``failed``) and whether it
  is in the pending-retry list;
* how many copies of each message the server applied (``2`` means two or more).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fsm.analysis.report import message_name
from fsm.analysis.system import World
from fsm.model.vocabulary import MessageState

__all__ = [
    "VISIBLE",
    "MessageObservation",
    "Observation",
    "Visible",
    "observe",
]

Visible = Literal["unsent", "pending", "sent", "confirmed", "failed"]

#: How a message machine's state reads on a client. ``sent_ws``, ``sending_rest``
#: and ``retrying_rest`` all read ``sent``: a transport has taken the message and
#: nothing confirmed it yet. ``buffered`` reads ``pending``, as ``pending`` does: no
#: transport has taken it yet.
VISIBLE: dict[MessageState | None, Visible] = {
    None: "unsent",
    MessageState.pending: "pending",
    MessageState.sent_ws: "sent",
    MessageState.sending_rest: "sent",
    MessageState.retrying_rest: "sent",
    MessageState.confirmed: "confirmed",
    MessageState.failed: "failed",
    MessageState.buffered: "pending",
}


class MessageObservation(BaseModel):
    """One message as a test sees it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    state: Visible = Field(description="The client-visible state of the message.")
    held: bool = Field(description="Whether it is in the client's pending-retry list.")
    server: int = Field(ge=0, le=2, description="Copies the server applied (2 means two or more).")

    def __str__(self) -> str:
        held = " held" if self.held else ""
        return f"{self.state}{held} server={self.server}"


class Observation(BaseModel):
    """The part of a composed-system state a test can read from a client and a server."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    connected: bool = Field(description="The client's isConnected flag.")
    messages: tuple[MessageObservation, ...] = Field(
        description="Each message, in the order the user sends them (m1 first)."
    )

    @classmethod
    def initial(cls, messages: int) -> Observation:
        """What every run starts from: not connected, nothing sent."""
        unsent = MessageObservation(state="unsent", held=False, server=0)
        return cls(connected=False, messages=(unsent,) * messages)

    @classmethod
    def of(cls, connected: bool, *messages: tuple[Visible, bool, int]) -> Observation:
        """Shorthand: ``Observation.of(True, ("sent", True, 1), ("unsent", False, 0))``."""
        return cls(
            connected=connected,
            messages=tuple(
                MessageObservation(state=state, held=held, server=min(server, 2))
                for state, held, server in messages
            ),
        )

    def differences(self, other: Observation) -> list[str]:
        """What differs from ``other`` (this one expected, ``other`` observed), in words."""
        diffs = []
        if self.connected != other.connected:
            diffs.append(f"isConnected: expected {self.connected}, observed {other.connected}")
        if len(self.messages) != len(other.messages):
            diffs.append(f"messages: expected {len(self.messages)}, observed {len(other.messages)}")
        for i, (a, b) in enumerate(zip(self.messages, other.messages, strict=False)):
            for field in ("state", "held", "server"):
                x, y = getattr(a, field), getattr(b, field)
                if x != y:
                    diffs.append(f"{message_name(i)}.{field}: expected {x}, observed {y}")
        return diffs

    def __str__(self) -> str:
        flag = "connected" if self.connected else "not connected"
        parts = [flag] + [f"{message_name(i)} {m}" for i, m in enumerate(self.messages)]
        return "; ".join(parts)


_CACHE: dict[World, Observation] = {}


def observe(world: World) -> Observation:
    """The observation of ``world``: what a test reads from the client and the server."""
    hit = _CACHE.get(world)
    if hit is None:
        hit = Observation(
            connected=world.connection.reports_connected,
            messages=tuple(
                MessageObservation(state=VISIBLE[m.state], held=m.held, server=min(m.server, 2))
                for m in world.messages
            ),
        )
        if len(_CACHE) > 1 << 16:
            _CACHE.clear()
        _CACHE[world] = hit
    return hit
