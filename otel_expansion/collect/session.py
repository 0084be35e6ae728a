"""CLI sessions: consecutive runs share ``session.id`` until they are ``idle`` seconds apart.

State is one tiny file per service home, rewritten atomically each run. A race between two concurrent
runs at worst splits one session in two; it never corrupts anything.
"""

from __future__ import annotations

import contextlib
import os

from otel_expansion.config.paths import SESSION_FILE, random_id, read_small, write_private

TYPE_CHECKING = False
if TYPE_CHECKING:
    from otel_expansion.journal.record import EndedSessionEntry, SessionPart


class Session:
    __slots__ = ("commands", "id", "last_ns", "previous_id", "start_ns")

    def __init__(self, id: str, previous_id: str | None, start_ns: int, last_ns: int, commands: int) -> None:
        self.id, self.previous_id, self.start_ns, self.last_ns, self.commands = (
            id, previous_id, start_ns, last_ns, commands)


class EndedSession:
    """A session that went idle: recorded once, by the run that starts the next one."""

    __slots__ = ("commands", "duration_s", "end_ns", "id")

    def __init__(self, id: str, duration_s: float, commands: int, end_ns: int) -> None:
        self.id, self.duration_s, self.commands, self.end_ns = id, duration_s, commands, end_ns


def _load(path: str) -> Session | None:
    raw = read_small(path, 512)
    if not raw:
        return None
    try:
        sid, prev, start, last, count = raw.decode("ascii").split()
        return Session(sid, None if prev == "-" else prev, int(start), int(last), int(count))
    except (ValueError, UnicodeDecodeError):
        return None


def touch(home: str, now_ns: int, idle_s: float, commands: int = 1) -> tuple[Session, EndedSession | None]:
    """Continue or start the session at ``now_ns``; returns it and the session that ended, if any."""
    path = os.path.join(home, SESSION_FILE)
    current = _load(path)
    ended = None
    if current is None or now_ns - current.last_ns > idle_s * 1e9 or now_ns < current.start_ns:
        if current is not None:
            ended = EndedSession(
                current.id, (current.last_ns - current.start_ns) / 1e9, current.commands, current.last_ns
            )
        current = Session(random_id(), current.id if current else None, now_ns, now_ns, 0)
    current.last_ns = max(current.last_ns, now_ns)
    current.commands += commands
    data = f"{current.id} {current.previous_id or '-'} {current.start_ns} {current.last_ns} {current.commands}"
    write_private(path, data.encode("ascii"))
    return current, ended


def end(home: str, now_ns: int) -> EndedSession | None:
    """End the current session now (long-running programs at shutdown)."""
    path = os.path.join(home, SESSION_FILE)
    current = _load(path)
    if current is None:
        return None
    with contextlib.suppress(OSError):
        os.unlink(path)
    return EndedSession(current.id, (max(now_ns, current.last_ns) - current.start_ns) / 1e9, current.commands, now_ns)


def ended_entry(ended: EndedSession) -> EndedSessionEntry:
    """The journal/replay form of an ended session (the one place that shape is built)."""
    return {"id": ended.id, "duration": ended.duration_s, "commands": ended.commands}


def record_part(home: str, now_ns: int, idle_s: float, commands: int) -> SessionPart:
    """Session fields of a CLI run's journal record: its session, the previous one on a session's first
    run, and the session that went idle, if any."""
    current, ended = touch(home, now_ns, idle_s, commands)
    part: SessionPart = {"session": current.id}
    if current.previous_id and current.commands == commands:  # first run of a new session
        part["session_previous"] = current.previous_id
    if ended is not None:
        part["sessions_ended"] = [ended_entry(ended)]
    return part
