"""argparse: the run starts at the first top-level ``parse_known_args`` and ends at process exit.

argparse has no run boundary of its own, so the run ends at shutdown with the status the process
exits with (see ``integrations.final_exit``: the last ``sys.exit`` call, or the exception that escaped). The command is
the chain of sub-parsers chosen, or, for programs that dispatch by hand (read the subcommand from a
positional, then parse the rest with a second parser whose ``prog`` is ``"tool check"``), the words
that second parser's ``prog`` adds to the first one's. Every word passes the closed vocabulary
(``privacy.vocabulary.command_word``): a prog built from what the user typed names nobody.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from otel_expansion.collect.integrations import TelemetryHandle

from otel_expansion.collect import default_executable, integrations

_originals: dict[str, Any] = {}
_state: dict[str, Any] = {}


def install(telemetry: TelemetryHandle) -> None:
    import argparse

    if _originals:
        return
    recorder = telemetry.recorder
    parser_cls = argparse.ArgumentParser
    sub_cls = argparse._SubParsersAction
    _originals["parse_known_args"] = orig_parse = parser_cls.parse_known_args
    _originals["sub_call"] = orig_sub = sub_cls.__call__
    integrations.observe_exit()

    def parse_known_args(self: Any, args: Any = None, namespace: Any = None) -> Any:
        depth = _state.get("depth", 0)
        if depth == 0:
            try:  # noqa: SIM105
                _top_level_parse(recorder, self, args)
            except Exception:
                pass
        _state["depth"] = depth + 1
        try:
            return orig_parse(self, args, namespace)
        finally:
            _state["depth"] = depth

    def sub_call(self: Any, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> Any:
        run = _state.get("run")
        if run is not None and values:
            try:  # noqa: SIM105
                _subcommand(run, self, str(values[0]), recorder.declared_commands)
            except Exception:
                pass
        return orig_sub(self, parser, namespace, values, option_string)

    _originals["error"] = orig_error = parser_cls.error

    def error(self: Any, message: str) -> Any:
        if "run" in _state:
            telemetry.recorder.note_error(argparse.ArgumentError(None, message))
        return orig_error(self, message)

    _originals["exit"] = orig_exit = parser_cls.exit

    def exit(self: Any, status: int = 0, message: str | None = None) -> Any:
        run = _state.get("run")
        if status and run is not None and run.error is None:  # a parser whose error() is its own
            telemetry.recorder.note_error(argparse.ArgumentError(None, message or ""))
        return orig_exit(self, status, message)

    parser_cls.parse_known_args = parse_known_args  # type: ignore[method-assign]
    parser_cls.exit = exit  # type: ignore[method-assign]
    sub_cls.__call__ = sub_call  # type: ignore[method-assign]
    parser_cls.error = error  # type: ignore[method-assign]


def _subcommand(run: Any, action: Any, name: str, declared: frozenset[str] | None) -> None:
    """A sub-parser chosen: its name joins the path when the closed vocabulary admits it.

    Being in the parser's own table proves nothing (sub-parsers may be built from a list read at run
    time): the name must be written in the program's code (``add_parser("sync")``, a literal list),
    declared in ``init(commands=...)`` or published as an entry point (``vocabulary.command_word``)."""
    from otel_expansion.privacy.vocabulary import DYNAMIC, command_word

    known = name in action._name_parser_map
    word = command_word(name, declared, sys._getframe(2)) if known else DYNAMIC
    _state["path"].append(word)
    if known:
        _state["parsers"].append(action._name_parser_map[name])
    run.name = " ".join(_state["path"])  # record_exception() inside it is labelled with it
    run.origin = "declared"


def _top_level_parse(recorder: Any, parser: Any, args: Any) -> None:
    """First top-level parse: start the run. A later one whose ``prog`` extends the first: a subcommand."""
    run = _state.get("run")
    if run is None:
        if "root_prog" in _state or recorder.active is not None:
            return
        run = recorder.begin(default_executable(), origin="framework")
        if run is not None:
            _state["run"] = run
            _state["path"] = []
            _state["parsers"] = [parser]
            _state["root_prog"] = str(parser.prog or "")
            argv = list(args) if args is not None else sys.argv[1:]
            recorder.set_args(argv)
            _state["clusters"] = integrations.short_clusters(argv)
        return
    root, prog = _state["root_prog"], str(parser.prog or "")
    if root and prog.startswith(root + " ") and not _state["path"]:
        words = prog[len(root):].split()
        if words:  # a prog built at run time (f"tool {cmd}"): each word must be in the vocabulary
            from otel_expansion.privacy.vocabulary import command_word

            frame = sys._getframe(2)
            _state["path"] = [command_word(w, recorder.declared_commands, frame) for w in words]
            _state["parsers"].append(parser)
            _state["hand_dispatch"] = True
            run.name = " ".join(_state["path"])
            run.origin = "declared"


def finish(telemetry: TelemetryHandle) -> None:
    """End the argparse run with the status the process exits with; called at shutdown."""
    run = _state.pop("run", None)
    if run is None:
        return
    path = _state.pop("path", [])
    parsers = _state.pop("parsers", [])
    _state.pop("hand_dispatch", None)
    if path:  # every word admitted by the vocabulary, or a placeholder
        run.name = " ".join(path)
        run.origin = "declared"
    clusters = _state.pop("clusters", [])
    if run.args:  # only flags a parser on the way declares: a mistyped flag may be someone's value
        actions: dict[str, Any] = {}
        for p in parsers:
            actions.update(getattr(p, "_option_string_actions", {}))
        declared = {"-h", "--help", *actions}
        run.args = tuple(dict.fromkeys(a for a in (*run.args, *_split(clusters, actions)) if a in declared))
    integrations.end_run(telemetry.recorder, run)


def _split(clusters: list[tuple[str, str]], actions: dict[str, Any]) -> list[str]:
    """The flags in each cluster, as argparse reads it: letters that are declared options taking no value
    (``store_true``, ``count``...) one after another, up to the first that takes a value (the rest is that
    value) or is not declared (the rest cannot be told from a value: not kept). A cluster right after a
    long flag that is not a declared no-value option may be that flag's value (``--password -abc``): skipped."""
    out: list[str] = []
    for previous, cluster in clusters:
        if previous.startswith("--") and "=" not in previous \
                and getattr(actions.get(previous), "nargs", None) != 0:
            continue
        for letter in cluster[1:]:
            action = actions.get("-" + letter)
            if action is None:
                break
            out.append("-" + letter)
            if getattr(action, "nargs", None) != 0:
                break
    return out


def uninstall() -> None:
    import argparse

    if not _originals:
        return
    argparse.ArgumentParser.parse_known_args = _originals["parse_known_args"]  # type: ignore[method-assign]
    argparse._SubParsersAction.__call__ = _originals["sub_call"]  # type: ignore[method-assign]
    argparse.ArgumentParser.error = _originals["error"]  # type: ignore[method-assign]
    argparse.ArgumentParser.exit = _originals["exit"]  # type: ignore[method-assign]
    integrations.unobserve_exit()
    _originals.clear()
    _state.clear()
