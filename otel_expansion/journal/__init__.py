"""The run journal: one small file per finished CLI run (``store``), in the format ``record`` declares.

The format's version and where each version's records live are here, in the package itself: a CLI's
exit path needs them to write a record and loads this package anyway, so the reading side (``record``:
its types, ``check`` and the upgrades) stays out of that process. Nothing here imports ``record``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

VERSION = 2
"""Bump when a field changes meaning (see ``journal.record``: an upgrade in UPGRADES, a new directory).

2 (0.3): a command may have no exit code (outcome ``unknown``: an exit nobody could observe), and a body
may carry a long-running program's usage aggregate (``usage``; its commands, ``metered``, are spans only).
A 0.2 sender would read the first as success and count the second's sampled commands as all there were,
so such records are version 2, in ``journal-v2``, where 0.2 never looks. Every other record is still
written as version 1 (:func:`version_of`): an older release keeps reading what it can read right.

The error signature (``sig`` of a command or handled exception, 0.3 round 3; in a usage aggregate the extra
lists ``error_signatures`` and ``handled_signatures`` beside the unchanged totals ``errors`` and ``handled``)
is an added field, not a changed meaning: it refines a count an older release already counts exactly (by
command and error type), so it does not raise a record's version. An older release replays such a record
with every count right and without the signature; a newer version would keep the record from it (left
in ``journal-v3`` until an upgrade), which would lose its errors from the counts of a downgraded install."""


def version_of(record: Mapping[str, object]) -> int:
    """The oldest version that can carry ``record``'s meaning: 2 when it has a command without an exit
    code or a service's usage aggregate (see :data:`VERSION`), else 1."""
    if record.get("metered") or record.get("usage"):
        return 2
    commands = record.get("commands")
    if isinstance(commands, (list, tuple)):
        for cmd in commands:
            if isinstance(cmd, dict) and "exit" not in cmd:
                return 2
    return 1


def directory_for(version: int) -> str:
    """The journal directory (inside the home) holding records of ``version`` (see the module docstring)."""
    return "journal" if version <= 1 else f"journal-v{version:d}"
