"""A program that hands every corpus value to telemetry through every door it has (run by test_corpus_leaks).

    python leak_app.py FRAMEWORK MODE      FRAMEWORK: click | typer | argparse | argparse-usage | manual

The values come from the JSON file in $LEAK_VALUES at run time, so none of them is a string constant of
this code (which would make it the program's own text). Each value goes in as a positional, an option
value, an undeclared flag, a dynamic command or plugin name, a dynamic feature name, feature attributes,
a handled exception, an uncaught exception's message and its chained cause; usage errors echo it. Many
invocations run in one process (click/typer through ``main(standalone_mode=False)``), to keep CPU low.
With $LEAK_AUTO set the app does not call init(): opentelemetry-instrument's configurator did.

Round-3 doors (issue 20), all frameworks: command names registered at run time (a click group listing
plugins, typer commands registered in a loop, argparse sub-parsers from a list, hand dispatch to a
second parser whose prog holds the typed word), a settings file ``exec``'d with values as literals,
exception classes made at run time and named after values, feature attributes as numbers and keys
computed at run time, allow-listed resource keys, and (under opentelemetry-instrument) HTTP requests
through urllib and requests whose URLs, paths, queries and headers hold values, and log records.
Round 3, error signatures: handled exceptions raised by a function renamed at run time to a value and by a
plugin module imported under a value as its name; the failures above all carry a signature too.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

VALUES: list[str] = json.load(open(os.environ["LEAK_VALUES"], encoding="utf-8"))  # noqa: SIM115
FRAMEWORK, MODE = sys.argv[1], sys.argv[2]

import otel_expansion

if not os.environ.get("LEAK_AUTO"):
    otel_expansion.init("leakapp", os.environ.get("LEAK_VERSION"), mode=MODE,
                        resource_keys=["deployment.environment", "team.owner", "build.*"])
if os.environ.get("LEAK_REGISTRY"):  # declared features: their attributes (only) may leave
    otel_expansion.declare_features(otel_expansion.Feature(
        "sync.started", "A sync began.", {"who": str, "target": str, "note": str, "count": int, "ok": bool}))
SAMPLE = VALUES[:: max(1, len(VALUES) // 120)]  # the doors that cost a process-wide setup each


def settings_module() -> dict[str, object]:
    """A settings.py the program exec's (Django style): the user's file, with values as literals."""
    import tempfile

    lines = ["import otel_expansion", "OWNERS = " + repr(SAMPLE), ""]
    for i, v in enumerate(SAMPLE):
        lines += [f"def check_{i}():", f"    otel_expansion.feature({v!r})",
                  f"    otel_expansion.feature('sync.started', who={v!r}, note='owner ' + {v!r})",
                  f"    with otel_expansion.command({v!r}):", f"        raise ValueError({v!r})", ""]
    path = os.path.join(tempfile.mkdtemp(), "settings.py")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    namespace: dict[str, object] = {"__name__": "leak_settings"}
    with open(path, encoding="utf-8") as fh:
        exec(compile(fh.read(), path, "exec"), namespace)
    return namespace


def round3(v: str, i: int) -> None:
    """Doors every framework shares: run-time exception classes, numeric and computed feature
    attributes, and a settings file's literals (exec'd)."""
    digits = "".join(c for c in v if c.isdigit())
    # undeclared: a key computed at run time, an account number as an int, a coordinate as a float
    attrs: dict[str, object] = {v: 1, "account": int(digits[:15]) if digits else 7, "lat": float(len(v)) + 0.123456}
    otel_expansion.feature("sync.started", **attrs)  # type: ignore[arg-type]
    try:
        raise type(v, (RuntimeError,), {})("made at run time")
    except RuntimeError as exc:
        otel_expansion.record_exception(exc)
    if i < len(SAMPLE):
        check = SETTINGS[f"check_{i}"]
        with contextlib.suppress(ValueError):
            check()  # type: ignore[operator]
        for door in (renamed, plugin):  # cli.error.signature: frames named at run time
            try:
                door(v)
            except ValueError as exc:
                otel_expansion.record_exception(exc)


def _fail(v: str) -> None:
    raise ValueError(v)


def renamed(v: str) -> None:
    """A function whose code is renamed at run time to a value (a framework naming handlers after data)."""
    import types

    types.FunctionType(_fail.__code__.replace(co_name=v), globals())(v)


def plugin(v: str) -> None:
    """A plugin file found on disk, imported under a module name that is a value."""
    import importlib.util
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "plugin.py")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("def run(v):\n    raise ValueError(v)\n")
    spec = importlib.util.spec_from_file_location(v, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[v] = module
    try:
        spec.loader.exec_module(module)
        module.run(v)
    finally:
        sys.modules.pop(v, None)


SETTINGS = settings_module()


def work(name: str, target: str) -> None:
    """What a command does with user data: features, a handled error, then a chained failure."""
    otel_expansion.feature("sync.started", who=name, target=target, note=f"syncing {target} for {name}",
                           items=[name, target], count=3, ok=True)
    otel_expansion.feature(name)  # a name built at run time
    try:
        raise ValueError(f"no account {name!r} at {target}")
    except ValueError as exc:
        otel_expansion.record_exception(exc)
    try:
        raise KeyError(name)
    except KeyError as cause:
        if name and name == target and len(name) % 3 == 0:  # an uncaught class made at run time
            raise type(name, (LookupError,), {})(f"lookup of {target}") from cause
        raise RuntimeError(f"sync of {target} failed for {name}: retry later") from cause


def finish_run() -> None:
    """What process exit does for a run a usage error left open (the loop keeps one process)."""
    from otel_expansion import _runtime
    from otel_expansion.collect import integrations

    if _runtime._handle is not None:
        integrations.finish_all(_runtime._handle)


def flush_every(i: int, n: int = 150) -> None:
    """Persist every ``n`` values, as a long-running program's flushes would (bounded journal records)."""
    from otel_expansion import _runtime

    if i % n == n - 1 and _runtime._handle is not None:
        _runtime._handle.flush()


def invoke(main: object, args: list[str]) -> None:
    sys.argv = ["leakapp", *args]
    with contextlib.suppress(BaseException):
        main(args, prog_name="leakapp", standalone_mode=False)  # type: ignore[operator]
    finish_run()


def run_click() -> None:
    import click

    class PluginGroup(click.Group):
        """git/kubectl style: an unknown command name runs a plugin of that name; plugins found on
        disk are listed as the group's own commands."""

        def list_commands(self, ctx: click.Context) -> list[str]:
            return [*super().list_commands(ctx), *SAMPLE]

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            found = super().get_command(ctx, cmd_name)
            if found is not None:
                return found

            @click.command(name=cmd_name)
            @click.argument("rest", nargs=-1)
            def plugin(rest: tuple[str, ...]) -> None:
                raise RuntimeError(f"plugin {cmd_name} failed on {' '.join(rest)}")

            return plugin

    @click.group(cls=PluginGroup)
    @click.option("--verbose", is_flag=True)
    def cli(verbose: bool) -> None:
        pass

    @cli.command()
    @click.option("--name", default="")
    @click.argument("target")
    def sync(name: str, target: str) -> None:
        work(name, target)

    for i, v in enumerate(VALUES):
        flush_every(i)
        invoke(cli.main, ["--verbose", "sync", "--name", v, v])
        invoke(cli.main, ["sync", f"--{v}", "x"])  # an undeclared flag: usage error that echoes it
        if not v.startswith("-"):
            invoke(cli.main, [v, v])  # a plugin name: the typed positional becomes a command
        round3(v, i)


def run_typer() -> None:
    import typer

    app = typer.Typer(add_completion=False)

    @app.command()
    def sync(target: str, name: str = "") -> None:
        work(name, target)

    @app.command()
    def status() -> None:
        pass

    def plugin() -> None:
        raise RuntimeError("plugin failed")

    for v in SAMPLE:  # commands registered in a loop over names found at run time
        if not v.startswith("-"):
            app.command(v)(plugin)

    main = typer.main.get_command(app).main
    for i, v in enumerate(VALUES):
        flush_every(i)
        invoke(main, ["sync", "--name", v, v])
        invoke(main, ["sync", f"--{v}", "x"])
        if not v.startswith("-"):
            invoke(main, [v, "x"])  # a registered plugin, or not a command: usage error that echoes it
        round3(v, i)


def run_argparse(usage_error: bool) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="leakapp")
    parser.add_argument("--verbose", action="store_true")
    sub = parser.add_subparsers(dest="cmd")
    p = sub.add_parser("sync")
    p.add_argument("--name", action="append", default=[])
    p.add_argument("targets", nargs="*")
    if usage_error:  # an invalid sub-command: argparse prints it and exits 2
        sys.argv = ["leakapp", VALUES[0], "--name", VALUES[1]]
        parser.parse_args(sys.argv[1:])
        return
    for v in SAMPLE:  # sub-parsers built from a list found at run time
        if not v.startswith("-"):
            sub.add_parser(v)
    for i, v in enumerate(SAMPLE):  # one run per process in real life: the integration's state reset
        if v.startswith("-"):
            continue
        argparse_run(parser, [v])
        hand = argparse.ArgumentParser(prog="leakapp")
        hand.add_argument("cmd")
        args, rest = argparse_run(hand, [v, "--x", v], keep=True)
        second = argparse.ArgumentParser(prog=f"leakapp {args.cmd}")  # git-style hand dispatch
        second.add_argument("--x")
        second.parse_known_args(rest)
        with contextlib.suppress(RuntimeError):
            work(v, v)
        round3(v, i)
        finish_run()
    argparse_reset()
    argv = ["--verbose", "sync", *VALUES, *(x for v in VALUES for x in ("--name", v)), *(f"--{v}" for v in VALUES)]
    sys.argv = ["leakapp", *argv]
    parser.parse_known_args(argv)
    for i, v in enumerate(VALUES):
        flush_every(i, 500)
        with contextlib.suppress(RuntimeError):
            work(v, v)
    try:
        raise KeyError(VALUES[0])
    except KeyError as cause:
        raise RuntimeError(f"sync failed for {', '.join(VALUES[:40])}") from cause


def argparse_reset() -> None:
    from otel_expansion.collect.integrations import argparse as integration

    integration._state.clear()


def argparse_run(parser: object, argv: list[str], keep: bool = False) -> object:
    """One argparse run (a process's worth), without leaving this process."""
    argparse_reset()
    sys.argv = ["leakapp", *argv]
    out = None
    with contextlib.suppress(SystemExit):
        out = parser.parse_known_args(argv)  # type: ignore[attr-defined]
    if not keep:
        finish_run()
    return out


def run_manual() -> None:
    for i, v in enumerate(VALUES):
        flush_every(i)
        with contextlib.suppress(RuntimeError), otel_expansion.command(v):  # a name built at run time
            work(v, v)
        with contextlib.suppress(RuntimeError), otel_expansion.command("deploy"):
            round3(v, i)  # first: work() ends the command by raising
            work(v, "prod")


def foreign_traffic() -> None:
    """Under opentelemetry-instrument: HTTP through urllib and requests (contrib instruments both),
    values in the path, query, fragment-free URL and headers; and log records naming values."""
    import logging
    import threading
    import urllib.parse
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404 if len(self.path) % 2 else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        import requests
    except ImportError:
        requests = None  # type: ignore[assignment]
    log = logging.getLogger("leakapp")
    for v in SAMPLE:
        q = urllib.parse.quote(v, safe="")
        url = f"{base}/users/{q}/files?owner={q}"
        with contextlib.suppress(Exception):
            urllib.request.urlopen(urllib.request.Request(url, headers={"X-User": v.encode().hex()}), timeout=5).read()
        if requests is not None:
            with contextlib.suppress(Exception):
                requests.get(url, headers={"X-Owner": q}, timeout=5)
        log.warning("fetched %s for %s", url, v)
    server.shutdown()


def write_docs() -> None:
    """The app's generated TELEMETRY.md, as `<prog> telemetry docs` prints it (searched for values)."""
    from otel_expansion import _runtime
    from otel_expansion.sdk.docs import app_markdown

    handle = _runtime._handle
    if handle is not None and os.environ.get("LEAK_DOCS"):
        with open(os.environ["LEAK_DOCS"], "w", encoding="utf-8") as fh:
            fh.write(app_markdown(handle.settings.service_name, version=handle.settings.service_version))


write_docs()
if os.environ.get("LEAK_AUTO"):
    foreign_traffic()
if FRAMEWORK == "click":
    run_click()
elif FRAMEWORK == "typer":
    run_typer()
elif FRAMEWORK.startswith("argparse"):
    run_argparse(FRAMEWORK == "argparse-usage")
else:
    run_manual()
