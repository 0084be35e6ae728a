"""argparse: a ``telemetry`` subparser that runs the command while the host's parser is still parsing.

The host dispatches on its own namespace after ``parse_args()`` returns and knows nothing of
``telemetry``; so this subparser runs the command from inside the parse and exits with its status, and
the host's code after ``parse_args()`` never sees it.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add(parser: argparse.ArgumentParser, name: str, program: str, service: str | None, help: str) -> None:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        raise TypeError("the argparse parser has no subcommands (add_subparsers()) to add `telemetry` beside")
    sub = actions[0]
    base: Any = sub._parser_class

    class TelemetryParser(base):  # type: ignore[misc]
        def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
            from otel_expansion.controls.commands import run

            self.exit(run(list(args or ()), prog=f"{program} {name}", service=service))

    sub._parser_class = TelemetryParser
    try:
        sub.add_parser(name, help=help, add_help=False)
    finally:
        sub._parser_class = base
