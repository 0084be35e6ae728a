"""A frozen app (PyInstaller and the like) serves as its own sender: it has no Python to start one with.

The freezer's runtime hook calls :func:`serve_if_asked` before the program's own code runs. Started by the
launcher with ``launcher.FROZEN_FLAG + token`` as its first argument and the same token in
``launcher.FROZEN_TOKEN_ENV``, the executable runs one sender round and exits; the program is never
imported. Any other start (a user typing the flag included: the 128-bit token must also be in the
environment) runs the program as usual, with its arguments untouched.
"""

from __future__ import annotations

import os
import sys

from otel_expansion.export import launcher


def serve_if_asked() -> None:
    """Declare that this executable can serve as its sender; when asked to, serve and exit."""
    launcher.self_sender = True
    if len(sys.argv) < 2 or not sys.argv[1].startswith(launcher.FROZEN_FLAG):
        return
    token = os.environ.get(launcher.FROZEN_TOKEN_ENV, "")
    if len(token) < 32 or sys.argv[1] != launcher.FROZEN_FLAG + token:
        return  # not our launcher's start: the program runs with the arguments it was given
    del os.environ[launcher.FROZEN_TOKEN_ENV]
    from otel_expansion.workers.sender import main

    code = main(sys.argv[2:])
    sys.stdout.flush()
    raise SystemExit(code)
