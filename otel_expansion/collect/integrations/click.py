"""click (and typer, which runs on click's Context): one command run per root context.

Why hooks on ``Context`` rather than a wrapper around ``Command.main``: a wrapper sits on the stack and
would add its frames to every traceback the host prints. ``Context.__init__`` (a root context starts a
run; a sub-context names the subcommand) and ``__exit__`` (how it ended) are called beside the
host's code, never around it, so output, exit codes and exceptions stay exactly the host's.
``ClickException.show`` reveals errors click reports itself (usage errors raised before any context is
entered); a run whose root context never closed is finished at shutdown.

The command name is the chain the user invoked: a context counts only when its parent group resolved it
(``parent.invoked_subcommand``), so ``ctx.invoke(other)`` inside a command does not rename the run.
The exit status is the process's last word (see ``integrations.final_exit``): a process that ran one command gets the
status the shell sees, e.g. typer's 130 for Ctrl-C, or the 1 of a wrapper that caught click's exit.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from otel_expansion.collect.integrations import TelemetryHandle

from otel_expansion.collect import default_executable

_originals: dict[Any, dict[str, Any]] = {}
_state: dict[str, Any] = {}


def _invoked(ctx: Any) -> bool:
    """``ctx`` belongs to the chain the user typed: its parent group resolved it (not ``ctx.invoke``)."""
    parent = ctx.parent
    chosen = getattr(parent, "invoked_subcommand", None)
    return chosen is not None and (chosen == ctx.info_name or (chosen == "*" and getattr(
        parent.command, "chain", False)))


def command_path(ctx: Any) -> str:
    """``remote add`` for ``git remote add``: info names below the root; "" at the root itself."""
    names = []
    node = ctx
    while node is not None and node.parent is not None:
        names.append(node.info_name or "")
        node = node.parent
    return " ".join(reversed(names))


def exit_status(click: Any, exc: BaseException | None) -> tuple[int, BaseException | None]:
    """The exit code click's standalone ``main`` turns ``exc`` into, and the error worth recording."""
    from otel_expansion.collect import exit_code_of

    exceptions = getattr(click, "exceptions", click)
    # typer's vendored click lacks some classes (no Exit, no Abort): match what exists, by name otherwise
    exit_cls = getattr(exceptions, "Exit", None)
    click_exc = getattr(exceptions, "ClickException", None)
    abort_cls = getattr(exceptions, "Abort", None)

    if exc is None:
        return 0, None
    if (exit_cls is not None and isinstance(exc, exit_cls)) or (
        type(exc).__name__ == "Exit" and hasattr(exc, "exit_code")
    ):
        return int(getattr(exc, "exit_code", 0) or 0), None
    if click_exc is not None and isinstance(exc, click_exc):
        return int(getattr(exc, "exit_code", 1)), exc
    if (abort_cls is not None and isinstance(exc, abort_cls)) or isinstance(
        exc, (EOFError, KeyboardInterrupt, OSError)
    ):
        return 1, exc
    return exit_code_of(exc), None if isinstance(exc, SystemExit) else exc


def install(telemetry: TelemetryHandle) -> None:
    import click

    hook(click, telemetry)


def hook(click: Any, telemetry: TelemetryHandle) -> None:
    """Install the hooks on a click module (click itself, or a copy vendored by typer)."""
    from otel_expansion.collect import integrations

    ctx_cls = click.Context
    if ctx_cls in _originals:
        return
    integrations.observe_exit()
    recorder = telemetry.recorder
    orig = _originals.setdefault(ctx_cls, {})
    orig["__init__"], orig["__exit__"] = ctx_cls.__init__, ctx_cls.__exit__
    orig_init, orig_exit = orig["__init__"], orig["__exit__"]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_init(self, *args, **kwargs)
        if self.parent is None:
            if recorder.active is None and "root" not in _state:
                try:
                    run = recorder.begin(default_executable(), origin="framework")
                    if run is not None:
                        _state["root"], _state["run"] = self, run
                        _state["declared"] = recorder.declared_commands
                        argv = _argv()
                        recorder.set_args(argv)
                        if run.args:  # argument shapes are kept at this level: read by the declarations
                            _state["argv"] = argv  # at the end (in memory only, never stored)
                except Exception:
                    pass
        elif _state.get("run") is not None:
            try:  # noqa: SIM105 -- created, not entered: a usage error in the subcommand's own options still names it
                _note_subcommand(self)
            except Exception:
                pass

    def __exit__(self: Any, exc_type: Any, exc: BaseException | None, tb: Any) -> Any:
        result = orig_exit(self, exc_type, exc, tb)
        try:
            if exc is not None and _state.get("run") is not None:
                code, error = exit_status(click, exc)
                if error is not None:
                    recorder.note_error(error)
            if self is _state.get("root") and getattr(self, "_depth", 0) == 0:
                code, error = exit_status(click, exc)
                _finish(recorder, error, code)
        except Exception:
            pass
        return result

    ctx_cls.__init__ = __init__
    ctx_cls.__exit__ = __exit__
    exceptions = getattr(click, "exceptions", click)
    for name in ("ClickException", "UsageError"):  # click reports its errors via show() before exiting
        cls = getattr(exceptions, name, None)
        if cls is None or "show" not in cls.__dict__:
            continue
        _originals.setdefault(cls, {})["show"] = original_show = cls.__dict__["show"]
        cls.show = _noting_show(recorder, original_show)


def _note_subcommand(ctx: Any) -> None:
    """A context in the invoked chain deeper than any before: it names the run from now on."""
    run = _state["run"]
    if _invoked(ctx) and _in_chain(ctx):
        path = command_path(ctx)
        if len(path) > len(_state.get("path", "")):
            _state["path"] = path
            _state["ctx"] = ctx
            # record_exception() inside the subcommand is labelled with it: the admitted path already
            run.name, _ = declared_path(ctx, _state.get("declared"))
            run.origin = "declared"


def _in_chain(ctx: Any) -> bool:
    """Every context from ``ctx`` up to the run's root was resolved by its parent group."""
    root = _state.get("root")
    node = ctx
    while node is not None and node is not root:
        if node.parent is not None and node is not ctx and not _invoked(node):
            return False
        node = node.parent
    return node is root


def _argv() -> list[str]:
    import sys

    return sys.argv[1:]


def _noting_show(recorder: Any, original: Any) -> Any:
    def show(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _state.get("run") is not None:
            recorder.note_error(self)
        return original(self, *args, **kwargs)

    return show


def _finish(recorder: Any, error: BaseException | None, code: int, unknown: bool = False) -> None:
    run = _state.pop("run", None)
    root = _state.pop("root", None)
    path = _state.pop("path", "")
    ctx = _state.pop("ctx", None)
    declared = _state.pop("declared", None)
    argv = _state.pop("argv", [])
    if run is None:
        return
    if path:
        run.name, _ = declared_path(ctx, declared)
        run.origin = "declared"  # every word admitted by the vocabulary, or a placeholder
    if run.args:
        from otel_expansion.collect.integrations import declared_flags

        run.args = declared_flags(argv, _options(ctx or root))
    from otel_expansion.collect import integrations

    recorder.end(run, error, code, unknown=unknown)
    _state["ended"] = _state.get("ended", 0) + 1
    _state["last"] = (run, integrations.exit_seq())


def declared_path(ctx: Any, declared: frozenset[str] | None = None) -> tuple[str, bool]:
    """The command path with every name the closed vocabulary does not admit replaced by ``<dynamic>``;
    and whether all were admitted.

    A group's own listing proves nothing (``list_commands``/``get_command`` may serve plugins found on
    disk, typer may register commands in a loop over a file): a name counts only when written in the
    program's code (a decorator's literal, the function's ``def`` name), declared in
    ``init(commands=...)``, or published by an installed distribution's entry points
    (``privacy.vocabulary.command_word``)."""
    import sys

    from otel_expansion.privacy.vocabulary import DYNAMIC, command_word

    frame = sys._getframe(1)
    names: list[str] = []
    node = ctx
    while node is not None and node.parent is not None:
        name = node.info_name or ""
        names.append(command_word(name, declared, frame, _functions(node), _modules(node)))
        node = node.parent
    return " ".join(reversed(names)), DYNAMIC not in names


def _functions(ctx: Any) -> list[Any]:
    """The command's callback: its ``def`` name and constants may name it (``@cli.command()``)."""
    callback = getattr(ctx.command, "callback", None)
    return [callback] if callback is not None else []


def _modules(ctx: Any) -> list[str]:
    """Modules whose files may hold the literal naming ``ctx``'s command: those defining the callbacks
    of the chain and of the parent group's registered commands (``app.add_typer(sub, name="remote")``)."""
    out: list[str] = []
    node = ctx
    while node is not None:
        for cmd in [node.command, *list((getattr(node.command, "commands", None) or {}).values())[:8]]:
            fn = getattr(cmd, "callback", None)
            while getattr(fn, "__wrapped__", None) is not None:
                fn = fn.__wrapped__  # type: ignore[union-attr]
            module = getattr(fn, "__module__", None)
            if type(module) is str and module not in out:
                out.append(module)
        node = node.parent
    return out


def _options(ctx: Any) -> dict[str, bool | int | None]:
    """The options the invoked commands declare, their help option included (``-h`` where the app
    names it so): False takes no value (a flag, a counter), True takes one, None may or may not
    (``is_flag=False, flag_value=...``)."""
    out: dict[str, bool | int | None] = {"--help": False}
    node = ctx
    try:
        while node is not None:
            get_params = getattr(node.command, "get_params", None)
            params = get_params(node) if callable(get_params) else getattr(node.command, "params", ())
            for param in params:
                if getattr(param, "param_type_name", None) != "option":
                    continue
                nargs = getattr(param, "nargs", 1)
                kind: bool | int | None = nargs if type(nargs) is int and nargs > 1 else True
                if getattr(param, "_flag_needs_value", False):
                    kind = None
                elif getattr(param, "is_flag", False) or getattr(param, "count", False):
                    kind = False
                for opt in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())):
                    out.setdefault(opt, kind)
            node = node.parent
    except Exception:
        return {}
    return out


def finish(telemetry: TelemetryHandle) -> None:
    """At shutdown: end a run whose root context never closed (usage error while parsing), and give the
    process's one command the status the process exits with, when that was decided after it ended."""
    from otel_expansion.collect import exit_code_of, integrations

    recorder = telemetry.recorder
    status, error, seq = integrations.final_exit()
    if error is not None and _is_exit(error):
        error = None
    run = _state.get("run")
    if run is not None:
        if error is not None:
            recorder.note_error(error)
        error = run.error
        if status is integrations.UNKNOWN:
            _finish(recorder, error, 0, unknown=True)
            return
        code = exit_code_of(status) if status is not None else int(getattr(error, "exit_code", 1) if error else 0)
        _finish(recorder, error, code)
        return
    last = _state.get("last")
    if _state.get("ended") == 1 and last is not None and status is not None and seq > last[1]:
        if status is integrations.UNKNOWN:
            recorder.settle_unknown(last[0])
        else:
            recorder.settle(last[0], exit_code_of(status), error)


def _is_exit(exc: BaseException) -> bool:
    return isinstance(exc, SystemExit) or (type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"))


def uninstall() -> None:
    for cls, methods in _originals.items():
        for name, fn in methods.items():
            setattr(cls, name, fn)
    _originals.clear()
    _state.clear()
    from otel_expansion.collect import integrations

    integrations.unobserve_exit()
