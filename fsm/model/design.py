"""Designs (what the client does) and environments (what the world does to it).

A :class:`Design` is a set of named resilience features. The transition tables
in :mod:`fsm.model.tables` select their rows from these fields, so a design file is all
it takes to check a variant. Four designs are built in:

``pre-fix``
    The client of the seed bug note, before its fix.
``fixed``
    Exactly the seed's fix, no more, including the ``try?`` that swallows a
    failed REST retry.
``seed-system``
    The seed's four-part resilience system as written: the fix, reconnect on
    return from the background, and the companion fix that refetches responses
    the server already computed.
``hardened``
    The fix plus what production clients do (Ably, Phoenix, Socket.IO, Apple).

An :class:`Environment` says what the world may do to a socket besides iOS
suspending it with the app, which every built-in allows.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fsm.model.errors import InvalidArgument, SpecError, UnknownName

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "DESIGNS",
    "ENVIRONMENTS",
    "MAX_SPEC_BYTES",
    "ClearPolicy",
    "Design",
    "Environment",
    "OfflineSend",
    "design_file_schema",
    "file_kind",
    "get_design",
    "get_environment",
    "load_design",
    "read_regular_file",
]

ClearPolicy = Literal["ws_send", "any_done", "own_confirmation"]
RetryFailure = Literal["shown", "swallowed", "requeued"]
OfflineSend = Literal["rest", "buffer", "queue", "refuse"]

_NAME = r"^[a-z0-9][a-z0-9_.-]*$"

#: The largest design file :func:`load_design` reads; real ones are a few hundred bytes.
MAX_SPEC_BYTES = 64 * 1024


def _one_printable_line(value: str) -> str:
    """Refuse text that would break a listing, a terminal or a diagram: control
    characters (NUL, newlines, escape sequences), format characters, surrogates."""
    bad = next((ch for ch in value if not ch.isprintable()), None)
    if bad is not None:
        raise ValueError(
            f"must be one line of printable text; found {bad!r} at position {value.index(bad)}"
        )
    return value


class Design(BaseModel):
    """A client design: which resilience features it has."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(pattern=_NAME, max_length=64, description="Short name, e.g. 'fixed'.")
    summary: str = Field(min_length=1, max_length=200, description="One line for listings.")
    await_handshake: bool = Field(
        description="isConnected becomes true only when the server acknowledged the handshake "
        "(Ably RTN6, Apple didOpenWithProtocol), not on resume()."
    )
    send_failure_disconnects: bool = Field(
        description="A WebSocket send that raises is treated as a full disconnect "
        "(handleDisconnect()), not only logged."
    )
    write_ahead: bool = Field(
        description="The message is written into the pending-retry list before the WebSocket send."
    )
    rest_fallback: bool = Field(
        description="A failed WebSocket send retries every message of the pending-retry list "
        "over REST (onSendFailed)."
    )
    pending_cleared_on: ClearPolicy = Field(
        description="When pending-retry entries are removed: 'ws_send' (when the send returns), "
        "'any_done' (the whole list on any done/toolUse or REST success, as the seed's fix "
        "does), or 'own_confirmation' (each entry on its own message's confirmation)."
    )
    reconnect_on_foreground: bool = Field(
        description="Returning to the foreground closes a possibly stale socket and reconnects."
    )
    heartbeat: bool = Field(
        description="An unanswered ping declares the socket dead while the app is in the "
        "foreground (Phoenix heartbeat, Apple sendPing, Ably RTN23a)."
    )
    resend_on_reconnect: bool = Field(
        description="When a new connection is acknowledged, every message in the pending-retry "
        "list is resent over the WebSocket (Ably RTN19a)."
    )
    message_ids: bool = Field(
        description="Messages carry client-chosen ids and the server deduplicates on both "
        "WebSocket and REST (Ably RSL1k, Socket.IO)."
    )
    max_rest_attempts: int = Field(
        ge=1,
        le=5,
        description="REST attempts per message before the request counts as failed.",
    )
    rest_retry_failure: RetryFailure = Field(
        description="What happens to a message whose REST retry from the pending-retry list "
        "failed: 'shown' (the user sees the failure, Ably RTN7e), 'swallowed' (the seed's "
        "`_ = try? await self.sendViaREST(message)`: the error is dropped and the message "
        "looks sent) or 'requeued' (it goes back into the pending-retry list)."
    )
    refetch_after_reconnect: bool = Field(
        description="After a reconnect or a REST success, the client asks the server for the "
        "messages it has not seen confirmed, so a done/toolUse lost with a dead socket is "
        "recovered (the seed's companion fix; Ably resumed=false, Socket.IO recovered=false)."
    )
    # -- the design space of real client libraries; each default is the seed's behaviour --
    rest_endpoint: bool = Field(
        default=True,
        description="The client has a REST endpoint for messages. Without it no message "
        "ever goes over REST: no REST send, retry or outcome exists in the design.",
    )
    offline_send: OfflineSend = Field(
        default="rest",
        description="What a send does while the client is not connected (idle, handshaking, "
        "disconnected): 'rest' (sent over REST at once, the seed's client), 'buffer' (kept "
        "in an offline buffer and written over the WebSocket, in order, when a connection is "
        "acknowledged; socket.io's sendBuffer), 'queue' (it waits in the pending-retry list "
        "for the next connection; socket.io with retries) or 'refuse' (the user sees it "
        "failed).",
    )
    send_deadline_check: bool = Field(
        default=False,
        description="A send while the client reports connected first checks the heartbeat "
        "deadline: when it has passed (the app was suspended past it), the message is "
        "buffered and the connection closed instead of writing into the dead socket "
        "(socket.io-client 4.8.0, _hasPingExpired).",
    )
    acknowledged: bool = Field(
        default=True,
        description="The server acknowledges each message sent over the WebSocket (the "
        "done/toolUse; an emit with an acknowledgement callback). Without it a message "
        "written over the WebSocket is never confirmed (fire-and-forget emits).",
    )
    ack_timer: bool = Field(
        default=False,
        description="Each message awaiting its acknowledgement has a timer; when it fires "
        "first, the WebSocket attempt failed and the late acknowledgement is ignored "
        "(socket.io ackTimeout).",
    )
    ack_fails_on_disconnect: bool = Field(
        default=False,
        description="When the connection closes, every message written over it and still "
        "awaiting its acknowledgement fails its attempt at once (socket.io _clearAcks, for "
        "acknowledgement handlers that take an error).",
    )
    ws_attempts: int = Field(
        default=1,
        ge=1,
        le=5,
        description="WebSocket attempts per message, counted as they are made (its send, "
        "each resend). A failed attempt (see ack_timer and ack_fails_on_disconnect) with "
        "attempts left puts the message back into the pending-retry list and writes it "
        "again at once if the client reports connected, else at the next connection; "
        "otherwise the failure is shown (socket.io retries + 1, its tryCount).",
    )
    ordered_queue: bool = Field(
        default=False,
        description="The pending-retry list is a queue with one message in flight: while "
        "the client reports connected it writes its oldest message and waits for that "
        "message's acknowledgement (or its last failed attempt) before it writes the next; "
        "a message sent meanwhile waits behind it; a new connection writes the oldest "
        "again (socket.io's retries queue, _drainQueue).",
    )
    send_failure_shown: bool = Field(
        default=True,
        description="Where a WebSocket send that fails disconnects (send_failure_disconnects), "
        "the app is told the send failed, or its REST retry takes it (the seed's fix). "
        "False: the message stays as if written while the transport closes on its error "
        "(socket.io, a browser WebSocket: the write returns, the error arrives as the "
        "connection's close).",
    )

    @model_validator(mode="after")
    def _coherent(self) -> Design:
        for problem in _incoherent(self):
            raise ValueError(problem)
        return self

    @property
    def offline_buffer(self) -> bool:
        """The client has an offline buffer: sends while not connected go into it, or
        a send that finds the heartbeat deadline passed does."""
        return self.offline_send == "buffer" or self.send_deadline_check

    @property
    def reconnect_resend(self) -> Literal["none", "all", "oldest"]:
        """What a new connection writes of the pending-retry list: nothing, every
        message, or the oldest one (an ordered queue)."""
        if not self.resend_on_reconnect:
            return "none"
        return "oldest" if self.ordered_queue else "all"

    @property
    def notices_ack_failure(self) -> bool:
        """Something tells the client an acknowledgement will not come: its timer, or
        the connection's close."""
        return self.ack_timer or self.ack_fails_on_disconnect

    _printable_summary = field_validator("summary")(_one_printable_line)

    @classmethod
    def derived(cls) -> tuple[str, ...]:
        """The properties a table row's condition may read besides the fields."""
        return ("offline_buffer", "notices_ack_failure", "reconnect_resend")

    def features(self) -> dict[str, Any]:
        """The feature fields, without name and summary."""
        return self.model_dump(exclude={"name", "summary"})


def _incoherent(d: Design) -> list[str]:
    """Why the features of ``d`` do not make one client, each in one line naming the
    features that need each other (empty when they do)."""
    problems = []
    if d.rest_fallback and not d.write_ahead:
        problems.append(
            "rest_fallback needs write_ahead: the REST retry sends the pending-retry list"
        )
    if d.resend_on_reconnect and not d.write_ahead:
        problems.append(
            "resend_on_reconnect needs write_ahead: the resend reads the pending-retry list"
        )
    if not d.rest_endpoint:
        if d.offline_send == "rest":
            problems.append(
                "offline_send = 'rest' needs rest_endpoint: without REST a send while not "
                "connected is buffered, queued or refused (offline_send = 'buffer', 'queue' "
                "or 'refuse')"
            )
        if d.rest_fallback:
            problems.append(
                "rest_fallback needs rest_endpoint: the failed send's retry goes over REST; "
                "without REST use ws_attempts to send it again over the WebSocket"
            )
        if d.max_rest_attempts != 1 or d.rest_retry_failure != "shown":
            problems.append(
                "max_rest_attempts and rest_retry_failure describe REST requests: without "
                "rest_endpoint leave them at 1 and 'shown'"
            )
    if d.offline_send == "queue" and not d.resend_on_reconnect:
        problems.append(
            "offline_send = 'queue' needs resend_on_reconnect: the queued message is sent "
            "by the resend when a connection is acknowledged"
        )
    if not d.send_failure_shown and (not d.send_failure_disconnects or d.rest_fallback):
        problems.append(
            "send_failure_shown = false needs send_failure_disconnects and no rest_fallback: "
            "it says a failed send closes the connection and the message stays as written"
        )
    if d.ordered_queue and not (
        d.resend_on_reconnect
        and d.acknowledged
        and d.pending_cleared_on == "own_confirmation"
        and d.offline_send == "queue"
    ):
        problems.append(
            "ordered_queue needs resend_on_reconnect (the queue's oldest message is written "
            "on a new connection), acknowledged (it waits for acknowledgements), "
            "pending_cleared_on = 'own_confirmation' (each message leaves it on its own) and "
            "offline_send = 'queue' (a message sent while not connected waits in the queue, "
            "as one sent behind its oldest message does)"
        )
    if d.send_deadline_check and not d.heartbeat:
        problems.append(
            "send_deadline_check needs heartbeat: the deadline a send checks is the heartbeat's"
        )
    if not d.acknowledged and d.notices_ack_failure:
        problems.append(
            "ack_timer and ack_fails_on_disconnect need acknowledged: without an "
            "acknowledgement there is nothing to wait for"
        )
    if d.ws_attempts > 1 and not d.notices_ack_failure:
        problems.append(
            "ws_attempts above 1 needs ack_timer or ack_fails_on_disconnect: a WebSocket "
            "attempt fails only when one of them says so"
        )
    if d.ws_attempts > 1 and not d.resend_on_reconnect:
        problems.append(
            "ws_attempts above 1 needs resend_on_reconnect: a message whose attempt failed "
            "while not connected is sent again by the resend at the next connection"
        )
    return problems


class Environment(BaseModel):
    """What the network and the OS may do to the client's socket."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME, max_length=64)
    summary: str = Field(min_length=1, max_length=200)
    suspended_sends_vanish: bool = Field(
        default=False,
        description="A send into a socket iOS suspended may return normally while its bytes "
        "go nowhere, besides raising (the seed's root cause, step 5: task.send() 'fails "
        "silently (no error thrown, just fails to send)').",
    )
    silent_drops: bool = Field(
        description="A live connection may go half-open without any event reaching the "
        "client, ever (NAT timeout, server killed; Starscream#935, SignalR#1518)."
    )
    half_open_sends_vanish: bool = Field(
        description="A send into a half-open socket may return without an error while the "
        "bytes never reach the server."
    )
    suspension_reported: bool = Field(
        default=True,
        description="The receive loop eventually reports a socket iOS suspended, once the app "
        "runs in the foreground again ('Socket is not connected', Starscream#908). The seed "
        "says handleDisconnect() was never called; with false, nothing ever reports it.",
    )

    _printable_summary = field_validator("summary")(_one_printable_line)


_PRE_FIX = Design(
    name="pre-fix",
    summary="The seed's client before the fix: flag set on resume(), send errors only logged.",
    await_handshake=False,
    send_failure_disconnects=False,
    write_ahead=False,
    rest_fallback=False,
    pending_cleared_on="any_done",
    reconnect_on_foreground=False,
    heartbeat=False,
    resend_on_reconnect=False,
    message_ids=False,
    max_rest_attempts=1,
    rest_retry_failure="shown",
    refetch_after_reconnect=False,
)

_FIXED = _PRE_FIX.model_copy(
    update={
        "name": "fixed",
        "summary": "Exactly the seed's fix: send failure disconnects, pending list, REST retry "
        "with try?.",
        "send_failure_disconnects": True,
        "write_ahead": True,
        "rest_fallback": True,
        "pending_cleared_on": "any_done",
        "rest_retry_failure": "swallowed",
    }
)

_SEED_SYSTEM = _FIXED.model_copy(
    update={
        "name": "seed-system",
        "summary": "The seed's four parts as written: the fix, reconnect on foreground, refetch.",
        "reconnect_on_foreground": True,
        "refetch_after_reconnect": True,
    }
)

_HARDENED = _SEED_SYSTEM.model_copy(
    update={
        "name": "hardened",
        "summary": "The fix plus handshake ack, heartbeat, foreground reconnect, resend, ids.",
        "await_handshake": True,
        "pending_cleared_on": "own_confirmation",
        "reconnect_on_foreground": True,
        "heartbeat": True,
        "resend_on_reconnect": True,
        "message_ids": True,
        "max_rest_attempts": 2,
        "rest_retry_failure": "shown",
    }
)

#: The built-in designs, by name.
DESIGNS: dict[str, Design] = {d.name: d for d in (_PRE_FIX, _FIXED, _SEED_SYSTEM, _HARDENED)}

#: The built-in environments, by name. The first is the default.
ENVIRONMENTS: dict[str, Environment] = {
    e.name: e
    for e in (
        Environment(
            name="ios-suspend",
            summary="iOS suspends sockets in the background; a send into one raises.",
            half_open_sends_vanish=False,
            silent_drops=False,
        ),
        Environment(
            name="ios-suspend-silent",
            summary="As ios-suspend, but a send into a suspended socket may also return "
            "normally while its bytes go nowhere (the seed's root cause, step 5).",
            half_open_sends_vanish=False,
            silent_drops=False,
            suspended_sends_vanish=True,
        ),
        Environment(
            name="half-open",
            summary="Also half-open connections: sockets die silently and may swallow sends.",
            half_open_sends_vanish=True,
            silent_drops=True,
        ),
    )
}

DEFAULT_ENVIRONMENT = "ios-suspend"


def get_design(name: str) -> Design:
    """The built-in design called ``name``; :class:`UnknownName` listing the known ones."""
    if not isinstance(name, str):
        raise InvalidArgument(f"a design name is a str, not {type(name).__name__}")
    try:
        return DESIGNS[name]
    except KeyError:
        raise UnknownName("design", name, sorted(DESIGNS)) from None


def get_environment(name: str) -> Environment:
    """The built-in environment called ``name``; :class:`UnknownName` listing the known ones."""
    if not isinstance(name, str):
        raise InvalidArgument(f"an environment name is a str, not {type(name).__name__}")
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise UnknownName("environment", name, sorted(ENVIRONMENTS)) from None


def load_design(path: str | Path) -> Design:
    """Read a design from a TOML or JSON file.

    ``based_on = "fixed"`` takes every field not given from a built-in design.
    Any problem raises :class:`SpecError` with one line naming the file, the
    field and what is wrong.
    """
    path = Path(path)
    if str(path) in ("", "."):
        raise SpecError("a design file name must not be empty")
    if path.suffix.lower() not in (".toml", ".json"):
        raise SpecError(f"{path}: unknown format {path.suffix!r}; use a .toml or .json file")
    text = read_regular_file(path, MAX_SPEC_BYTES, "a design file")
    data = _parse(path, text)
    try:
        return _design_from(path, data)
    except RecursionError:
        raise SpecError(f"{path}: a value is nested too deeply") from None


def _design_from(path: Path, data: Any) -> Design:
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the top level must be a table of design fields")
    base = data.pop("based_on", None)
    if base is not None:
        if not isinstance(base, str) or base not in DESIGNS:
            raise SpecError(
                f"{path}: based_on: must be one of {', '.join(sorted(DESIGNS))}, got {_shown(base)}"
            )
        inherited = DESIGNS[base].model_dump(exclude={"name", "summary"})
        if "summary" not in data:
            changed = sorted(k for k in data if k in inherited and data[k] != inherited[k])
            data["summary"] = f"{base}, changing {', '.join(changed)}" if changed else base
        data = {**inherited, **data}
    try:
        return Design.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{path}: {_first_error(exc)}") from None


def _shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def design_file_schema() -> dict[str, Any]:
    """The JSON Schema of a design file: :class:`Design`'s fields, plus ``based_on``,
    with which only ``name`` is required."""
    schema = Design.model_json_schema()
    schema["title"] = "Design file"
    schema["properties"]["based_on"] = {
        "description": "A built-in design whose values fill every field not given "
        "(except name and summary).",
        "enum": sorted(DESIGNS),
        "type": "string",
    }
    required = schema.pop("required")
    schema["anyOf"] = [{"required": required}, {"required": ["based_on", "name"]}]
    return schema


def read_regular_file(path: Path, limit: int, what: str) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``limit`` bytes long;
    :class:`SpecError` naming the file otherwise (``what`` says what it should be).

    The file is opened without blocking (a FIFO must not hang the reader) and
    refused unless it is a regular file (``/dev/zero``, a directory, a socket).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SpecError(f"{path}: cannot read: {file_kind(mode)}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise SpecError(f"{path}: larger than {_size(limit)}; not {what}")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None


def _size(n: int) -> str:
    return f"{n // (1 << 20)} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n // 1024} KiB"


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, from its ``st_mode``: "a FIFO"..."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _parse(path: Path, text: str) -> Any:
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        if kind == "JSON":
            return json.loads(text)
        return tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{path}: invalid {kind}: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        reason = str(exc).split(";")[0]
        raise SpecError(f"{path}: invalid {kind}: {reason}") from None


def _first_error(exc: ValidationError) -> str:
    """One line for a design file's validation errors: an unknown field first (with the
    closest known field), else the missing fields, all named, else the first error;
    the errors not described are named in ``(and N more: ...)``."""
    from fsm.model.errors import did_you_mean

    errors = list(exc.errors())

    def where(err: Any) -> str:
        text = ".".join(str(part) for part in err["loc"]) or "the file"
        return text if len(text) <= 60 else text[:57] + "..."

    def listed(errs: list[Any]) -> str:
        missing = [where(e) for e in errs if e["type"] == "missing"]
        other = [where(e) for e in errs if e["type"] != "missing"]
        return "; ".join(
            part
            for part in (
                ", ".join(other),
                f"missing {', '.join(missing)}" if missing else "",
            )
            if part
        )

    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    missing = [e for e in errors if e["type"] == "missing"]
    if unknown:
        shown = [unknown[0]]
        fields = [*Design.model_fields, "based_on"]
        head = f"{where(unknown[0])}: unknown field" + did_you_mean(where(unknown[0]), fields)
    elif [where(e) for e in missing] == ["name"]:
        shown = missing
        head = "name: missing: a design file names its design"
    elif missing:
        shown = missing
        choices = " | ".join(f'"{name}"' for name in DESIGNS)
        names = ", ".join(where(e) for e in missing)
        head = f"missing: {names} (or give based_on = {choices})"
    else:
        shown = [errors[0]]
        head = str(errors[0]["msg"]).removeprefix("Value error, ")
        if errors[0]["loc"]:
            head = f"{where(errors[0])}: {head}"
    rest = [e for e in errors if e not in shown]
    return f"{head} (and {len(rest)} more: {listed(rest)})" if rest else head
