"""init() and the module-level recording API. Imports nothing heavy; every failure is contained.

Two ways in share one recorder and one privacy model:
- ``cli`` (default for short-lived programs): runs are kept in memory and, at exit, written as one
  journal record; a detached sender replays them through the SDK pipeline and exports.
- ``service`` (long-running programs, or when an OpenTelemetry SDK is already configured): the SDK
  pipeline runs in-process and a background thread moves data to the spool and the collector.
"""

from __future__ import annotations

import atexit
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import FrameType, TracebackType
    from typing import Any, TypedDict, TypeVar

    from otel_expansion._types import AttrValue
    from otel_expansion.collect import CommandRun
    from otel_expansion.journal.record import Body, Record
    from otel_expansion.workers.service import ServiceRuntime

    F = TypeVar("F", bound=Callable[..., Any])

    class InitOptions(TypedDict, total=False):
        """init()'s options as they travel ``init -> _init -> _start -> _restart`` and on to the settings
        loader (``config.load``, whose keywords they are); paths already made text."""

        level: str | Level | None
        consent: str
        opt_out_env: str | None
        instrument: bool
        mode: str
        home: str | None
        endpoint: str | None
        debug: bool | None
        send: bool | None
        redact_patterns: Sequence[str]
        redact_allow: Sequence[str]
        hash_salt: str | None
        service_name_env: bool

    class Declared(TypedDict, total=False):
        """The app's own names, given to init() (``Recorder.declare``)."""

        commands: Sequence[str] | None
        features: Sequence[str] | None
        resource_keys: Sequence[str] | Mapping[str, Sequence[str]]

from otel_expansion import config as levels
from otel_expansion.collect import Recorder
from otel_expansion.config import Level, Settings, speak_for, warn

_handle: Telemetry | None = None


class Telemetry:
    """The handle init() returns: the resolved settings and the recording API of this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.recorder = Recorder(settings)
        self.service: ServiceRuntime | None = None  # the in-process SDK runtime, in service mode
        self.auto = False  # started by opentelemetry-instrument's configurator, not by the app
        self.init_options: InitOptions = {}
        self._pid = os.getpid()  # a forked child inherits this handle but must not report the parent's run
        # when init() ran: a run no framework names is recorded from here (wall, monotonic, CPU)
        self.started = (time.time_ns(), time.perf_counter_ns(), time.process_time())
        self.command_name: tuple[str, str] | None = None  # set_command() before any run began: (name, origin)
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.settings.enabled and not self._closed

    @property
    def level(self) -> Level:
        return self.settings.level

    # -- recording -------------------------------------------------------------------------------------
    def feature(self, name: str, **attributes: object) -> None:
        if not self._closed:  # the recorder itself does nothing when the level is off
            try:
                self.recorder.feature(name, attributes, _caller=sys._getframe(1))
            except Exception as exc:
                _contained("feature", exc)

    def record_exception(self, exc: BaseException) -> None:
        if self.enabled:
            try:
                self.recorder.exception(exc)
            except Exception as err:
                _contained("record_exception", err)

    def command(self, name: str) -> _CommandScope:
        return _CommandScope(self, name, _origin(name, sys._getframe(1)))

    # -- lifecycle -------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Persist what was recorded (journal or spool). Local I/O only: never waits on the network."""
        if not self.settings.enabled:
            return
        try:
            if self.service is not None:
                self.service.flush()
            else:
                _flush_to_journal(self)
        except Exception as exc:
            _contained("flush", exc)

    def shutdown(self, terminated: SystemExit | None = None) -> None:
        """Finish the active command, flush, start the sender if needed. Idempotent.

        ``terminated``: the status a termination signal stands for (:func:`_on_termination`): the runs it
        interrupted end with it, a ``command()`` in progress too (at a normal exit none is)."""
        if self._closed:
            return
        if os.getpid() != self._pid:  # forked child (daemonizing CLI, multiprocessing fork): not our run
            self._closed = True
            return
        _stopping.append(self)
        try:
            self._shutdown(terminated)
        finally:
            _stopping.remove(self)
            if _deferred_signal and not _stopping:  # a termination signal came while this ran: die of it now
                _die_of(_deferred_signal.pop())

    def _shutdown(self, terminated: SystemExit | None) -> None:
        try:
            from otel_expansion.collect.integrations import finish_all, finish_fallback, terminated_by

            if terminated is not None:
                terminated_by(terminated)
            finish_all(self)
            finish_fallback(self)
            if terminated is not None:  # commands() in progress, in every thread and task
                for run in self.recorder.open_runs():
                    self.recorder.end(run, terminated)
        except Exception as exc:
            _contained("shutdown", exc)
        self.flush()
        if self.service is not None:
            try:
                self.service.shutdown()
            except Exception as exc:
                _contained("shutdown", exc)
        self._closed = True
        try:
            from otel_expansion.collect.integrations import after_shutdown, uninstall_all

            after_shutdown()
            if self.service is None:
                # The run is recorded and the handle closed: every hook is now a no-op, so hand back what
                # was wrapped (sys.exit, exit(), os.exec*, the frameworks, the import hook). Left in place,
                # they keep this package reachable from sys, os and builtins into the interpreter's
                # finalization, which then clears each module's namespace one by one (~2 M instructions).
                uninstall_all()
                # the package's finder (otel_expansion/__init__.py): this run imports nothing more of ours
                sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "otel_expansion_finder", False) is not True]
        except Exception as exc:
            _contained("shutdown", exc)


    def retire(self) -> None:
        """Stand down without writing or sending anything (superseded by the app's own init())."""
        self._closed = True
        try:
            from otel_expansion import collect as resource

            resource.forget()  # the app's own init() names the service
            atexit.unregister(self.shutdown)
            from otel_expansion.collect import integrations

            integrations.uninstall_all()
            if self.service is not None:
                self.service.retire()
                self._remove_unused_home()
        except Exception as exc:
            _contained("init", exc)

    def _remove_unused_home(self) -> None:
        """Delete the provisional state directory if it never held data (only ids and session files)."""
        from otel_expansion.config import paths

        home = self.settings.home
        bookkeeping = {paths.INSTALL_ID_FILE, paths.SESSION_FILE, paths.SERVICE_FILE, paths.SENDER_LOCK,
                       paths.PUBLISHED_FILE, paths.PLAIN_NAME_FILE}
        try:
            names = set(os.listdir(home))
        except OSError:
            return
        if names <= bookkeeping:
            for name in names:
                os.unlink(os.path.join(home, name))
            os.rmdir(home)


_literal: Callable[[str, FrameType | None], bool] | None = None


def _load_literal() -> Callable[[str, FrameType | None], bool]:
    """privacy.provenance.literal_in_caller, imported on the first command, not per call."""
    global _literal
    from otel_expansion.privacy.provenance import literal_in_caller

    _literal = literal_in_caller
    return literal_in_caller


def _origin(name: str, frame: FrameType | None) -> str:
    """"literal" when ``name`` is written in the code of ``frame`` (or of the first frame outside this
    package above it), else "app": a name it computed, kept only if declared."""
    literal = _literal or _load_literal()
    return "literal" if literal(name, frame) else "app"


_CO_GENERATOR, _CO_COROUTINE, _CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200  # inspect's flags, without inspect


def _begin_own(t: Telemetry | None, name: str, origin: str) -> CommandRun | None:
    """A generator's command: its own owner, since it runs in turns with other code of its thread (two
    generators zipped are two commands, not one nested in the other)."""
    if t is None or t._closed:
        return None
    try:
        return t.recorder.begin(name, None, origin, owner=object())
    except Exception as exc:
        _contained("command", exc)
        return None


def _end_own(t: Telemetry | None, run: CommandRun | None, exc: BaseException | None) -> None:
    if t is not None and run is not None:
        try:
            t.recorder.end(run, exc)
        except Exception as err:
            _contained("command", err)


class _CommandScope:
    """``with command("deploy"):`` and ``@command("deploy")`` for programs without a CLI framework."""

    __slots__ = ("name", "origin", "run", "telemetry")

    def __init__(self, telemetry: Telemetry | None, name: str, origin: str | None = None) -> None:
        self.telemetry = telemetry
        self.name = name
        self.run: CommandRun | None = None
        # a name written in the app's code, or one it computed (kept only if declared)
        self.origin = _origin(name, sys._getframe(1)) if origin is None else origin

    def __enter__(self) -> _CommandScope:
        t = self.telemetry
        if t is not None and not t._closed:  # the recorder itself does nothing when the level is off
            try:
                self.run = t.recorder.begin(self.name, None, self.origin)
            except Exception as exc:
                _contained("command", exc)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        run = self.run
        if run is not None:
            self.run = None
            try:
                self.telemetry.recorder.end(run, exc)  # type: ignore[union-attr]  # run implies telemetry
            except Exception as err:
                _contained("command", err)

    def __call__(self, fn: F) -> F:
        name = self.name
        flags = getattr(getattr(fn, "__code__", None), "co_flags", 0)
        wrapper: Callable[..., Any]
        if flags & _CO_COROUTINE:  # async def: the command runs while the coroutine is awaited

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                with _CommandScope(_handle if self.telemetry is None else self.telemetry, name, self.origin):
                    return await fn(*args, **kwargs)

        elif flags & _CO_GENERATOR:  # a generator: the command runs while it is iterated

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                t = _handle if self.telemetry is None else self.telemetry
                run = _begin_own(t, name, self.origin)
                try:
                    result = yield from fn(*args, **kwargs)
                except GeneratorExit:  # the consumer stopped early (break, close()): the command succeeded
                    _end_own(t, run, None)
                    raise
                except BaseException as exc:
                    _end_own(t, run, exc)
                    raise
                _end_own(t, run, None)
                return result

        elif flags & _CO_ASYNC_GENERATOR:  # an async generator: the command runs while it is iterated

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                t = _handle if self.telemetry is None else self.telemetry
                run = _begin_own(t, name, self.origin)
                try:
                    async for item in fn(*args, **kwargs):
                        yield item
                except GeneratorExit:
                    _end_own(t, run, None)
                    raise
                except BaseException as exc:
                    _end_own(t, run, exc)
                    raise
                _end_own(t, run, None)

        else:

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with _CommandScope(_handle if self.telemetry is None else self.telemetry, name, self.origin):
                    return fn(*args, **kwargs)

        # functools.wraps without importing functools (~1 ms)
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            try:  # noqa: SIM105 -- contextlib.suppress would cost the import of contextlib
                setattr(wrapper, attr, getattr(fn, attr))
            except AttributeError:
                pass
        wrapper.__dict__.update(getattr(fn, "__dict__", {}))
        setattr(wrapper, "__wrapped__", fn)  # noqa: B010 -- a function's attribute mypy does not know
        return wrapper  # type: ignore[return-value]


def _contained(where: str, exc: BaseException) -> None:
    warn(f"telemetry error in {where}() ignored: {type(exc).__name__}: {exc}")


def init(
    service_name: str,
    service_version: str | None = None,
    *,
    level: str | Level | None = None,
    consent: str = "notify",
    opt_out_env: str | None = None,
    instrument: bool = True,
    mode: str = "auto",
    home: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    debug: bool | None = None,
    send: bool | None = None,
    redact_patterns: Sequence[str] = (),
    redact_allow: Sequence[str] = (),
    hash_salt: str | None = None,
    commands: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    resource_keys: Sequence[str] | Mapping[str, Sequence[str]] = (),
    service_name_env: bool = False,
    record_termination: bool = False,
    **unknown: object,
) -> Telemetry:
    """Start telemetry for this process; idempotent (a second call returns the first handle).

    ``level``: the app's default level (off|basic|enhanced|full); ``consent``: "notify" (opt-out, a
    first-run notice) or "ask" (opt-in); ``opt_out_env``: the app's own opt-out variable; ``instrument``:
    hook click/typer/argparse; ``mode``: "auto", "cli" or "service"; ``home``: state directory;
    ``endpoint``: collector URL; ``debug``/``send``: override OTEL_EXPANSION_DEBUG/_SEND;
    ``redact_patterns``/``redact_allow``: extra regexes / exact strings; ``hash_salt``: pseudonymise ids;
    ``commands``/``features``: the app's own names (a name computed at run time is kept only if listed;
    one written in the code, ``command("sync")``, always counts); ``resource_keys``: the
    OTEL_RESOURCE_ATTRIBUTES keys (or ``prefix.*``) the app takes over from the user's environment (none
    by default; a mapping gives each key the values it admits, anything else becomes ``<dynamic>``);
    ``service_name_env``: let the user's OTEL_SERVICE_NAME (identifier-shaped) rename the
    service (ignored by default: the service name is the app's own); ``record_termination``: a SIGTERM or
    SIGHUP that would kill the process unrecorded (no handler of the program's) first records the run it
    ends (exit status 128 + the signal) and hands what is pending to the journal or spool, then kills the
    process by the same signal, as it would have died (see docs/concepts.md).

    Never raises: an unknown option or a value of the wrong type warns once and loses only itself.
    """
    speak_for(service_name)  # from here on, a warning names the app it appears in
    options: InitOptions = {
        "level": level, "consent": consent, "opt_out_env": _text("opt_out_env", opt_out_env),
        "instrument": instrument, "mode": mode, "home": _text("home", home),
        "endpoint": _text("endpoint", endpoint), "debug": debug, "send": send, "redact_patterns": redact_patterns,
        "redact_allow": redact_allow, "hash_salt": _text("hash_salt", hash_salt),
        "service_name_env": bool(service_name_env),
    }
    for key in unknown:
        warn(f"init() ignores unknown option {key!r}")
    handle = _init(service_name, service_version, options,
                   declared={"commands": commands, "features": features, "resource_keys": resource_keys})
    if record_termination is True:
        if handle.enabled:  # off means off: no hook, this one included
            _record_termination()
    elif record_termination is not False:
        warn("init(record_termination=...) must be True or False; ignored")
    return handle


_TERMINATION_SIGNALS = ("SIGTERM", "SIGHUP")


def _record_termination() -> None:
    """Put :func:`_on_termination` on SIGTERM and SIGHUP where their action is still the default (the
    program's own handler, or an ignored signal, decides for itself). Only from the main thread, where
    Python runs signal handlers; a warning says when it cannot."""
    import signal

    for name in _TERMINATION_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:  # Windows has no SIGHUP
            continue
        try:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _on_termination)
        except (ValueError, OSError):  # not the main thread
            warn("init(record_termination=True) is only possible from the main thread; ignored")
            return


def _on_termination(signum: int, frame: FrameType | None) -> None:
    """A termination signal: record the run it ends, then die of it as the process would have.

    The runs in progress end with exit status 128 + the signal (what a shell reports for a process the
    signal killed), what is pending goes to the journal or spool (local I/O only), then the signal's
    default action is restored and the signal sent again: the process ends by it, its exit handlers and
    ``finally`` blocks not run, its parent sees the same status as without this handler.

    The recording runs in a thread of its own, waited for at most ``TERMINATION_WRITE_S``: the handler runs
    in the main thread wherever the signal found it, possibly inside one of our locks (the recorder's, as a
    command ends), and recording from there waited for that lock forever: a host that never died of its
    SIGTERM. Now, in that case, the run is not recorded and the process still dies on time."""
    if _stopping:  # the exit path is writing this run already: let it finish, then die of the signal
        _deferred_signal.append(signum)
        return
    try:
        t = _handle
        if t is not None:
            _within(TERMINATION_WRITE_S, lambda: t.shutdown(terminated=SystemExit(128 + signum)))
    except BaseException:  # whatever happened, the process must still die of its signal
        pass
    finally:
        _die_of(signum)


TERMINATION_WRITE_S = 2.0
"""How long a termination signal waits for its run to be recorded (a journal write takes about a millisecond)."""


def _within(seconds: float, work: Callable[[], None]) -> None:
    """``work`` in a new thread, waited for at most ``seconds``. A raw thread and lock (``_thread``): the
    ``threading`` module's own locks may be held by the very frame the signal interrupted."""
    import _thread

    done = _thread.allocate_lock()
    done.acquire()

    def run() -> None:
        try:
            work()
        except BaseException:  # the signal's default action follows either way
            pass
        finally:
            done.release()

    _thread.start_new_thread(run, ())
    done.acquire(timeout=seconds)


_stopping: list[Telemetry] = []
"""Handles whose shutdown is running: a termination signal then waits for it (:func:`_on_termination`)."""
_deferred_signal: list[int] = []


def _die_of(signum: int) -> None:
    """End the process by ``signum``'s default action, as it would have ended without our handler."""
    import signal

    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _text(option: str, value: object) -> str | None:
    """A text option (a path may be given as one): anything else warns and loses that option only."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, os.PathLike):
        try:
            value = os.fspath(value)
        except Exception:  # init() never raises: a path object that cannot say its path loses itself only
            value = None
    if isinstance(value, str):
        return value
    warn(f"init({option}=...) must be a string; ignored")
    return None


def _init(service_name: str, service_version: str | None, options: InitOptions, *, auto: bool = False,
          install_global: bool = False, declared: Declared | None = None) -> Telemetry:
    """init() for the app (``auto=False``) and for opentelemetry-instrument's configurator (``auto=True``)."""
    global _handle
    if auto:
        speak_for(service_name)
    if _handle is not None:
        if not (_handle.auto and not auto):
            return _handle
        # opentelemetry-instrument started us before the app's code ran; the app's own init() (its name,
        # consent policy, opt-out variable, level) is the one that counts: hand over to it.
        _handle.retire()
        _handle = None
    try:
        _handle = _start(service_name, service_version, options, declared or {}, install_global,
                         provisional=auto)
        _handle.auto = auto
    except Exception as exc:
        _contained("init", exc)
        _handle = Telemetry(Settings(service_name=service_name or "unknown_service", level=Level.OFF))
    return _handle


def _start(service_name: str, service_version: str | None, options: InitOptions, declared: Declared,
           install_global: bool, provisional: bool = False) -> Telemetry:
    from otel_expansion.config import Stored, home_of, load, opted_out, read_stored, state_name

    env = os.environ
    stored = Stored()
    if opted_out(env, options.get("opt_out_env")) is None:  # an opted-out run reads no file
        stored = read_stored(home_of(state_name(service_name, env, bool(options.get("service_name_env"))),
                                     options.get("home"), env))
    settings = load(service_name, service_version, environ=env, stored=Stored(stored.choice, stored.debug),
                    **options)
    deferred = False
    if (settings.level_source in ("default", "app", "consent-pending") and settings.opt_out_reason is None
            and _first_run_possible(settings)):
        from otel_expansion.privacy import consent

        if consent.first_run_due(settings.home, settings.consent_policy, env):
            asked = settings.level
            if settings.level_source == "consent-pending":  # ask for the level the app chose, not less
                notify: InitOptions = {**options, "consent": "notify"}
                asked = load(service_name, service_version, environ=env, stored=Stored(None, stored.debug),
                             **notify).level
            saved: InitOptions = {**options}

            def grant() -> None:
                _restart(service_name, service_version, saved, declared, install_global)

            # shown when the app adds its `telemetry` commands (so the notice can name them), else at exit
            consent.defer(settings.home, settings.service_name, asked, settings.consent_policy,
                          settings.opt_out_env, on_grant=grant)
            deferred = True
    telemetry = Telemetry(settings)
    telemetry.recorder.declare(**declared)
    telemetry.init_options = {**options}  # the app's own choices: `telemetry enable` reports against them
    if not settings.enabled:
        if deferred:
            atexit.register(_settle_first_run)
        return telemetry  # off means off: no file, no thread, no socket, no hook
    if settings.mode == "service" or (settings.mode == "auto" and _sdk_configured()):
        from otel_expansion.workers.service import ServiceRuntime

        telemetry.service = ServiceRuntime(settings, telemetry.recorder, install_global=install_global,
                                           provisional=provisional)
    if settings.instrument:
        from otel_expansion.collect.integrations import install_all

        install_all(telemetry)
    else:  # every run is recorded, framework or not: its exit is watched from here
        from otel_expansion.collect.integrations import observe_exit

        observe_exit()
    from otel_expansion.collect.integrations import watch_exec

    watch_exec(telemetry)  # a run that replaces its image (os.exec*) is recorded first
    atexit.register(telemetry.shutdown)
    if deferred:
        atexit.register(_settle_first_run)  # exit handlers run last-in first-out: the notice comes first
    return telemetry


def _first_run_possible(s: Settings) -> bool:
    """What ``consent.first_run_due`` needs before it can say yes (stdin and stderr are terminals; the
    notice is not shown yet, or the app asks), checked without importing it: a piped or already-told run
    loads neither the consent module nor CI detection. ``first_run_due`` still decides."""
    try:
        if not (sys.stderr.isatty() and sys.stdin is not None and sys.stdin.isatty()):
            return False
    except (AttributeError, ValueError):
        return False
    from otel_expansion.config import NOTICE_FILE

    return s.consent_policy == "ask" or not os.path.exists(os.path.join(s.home, NOTICE_FILE))


def _settle_first_run() -> None:
    """The question held until exit. Ctrl-C there stores no answer (asked again next run) and ends
    quietly: the program has finished, so its own exit status stands (no "Exception ignored" traceback)."""
    from otel_expansion.privacy import consent

    try:  # noqa: SIM105 - contextlib is an import on every exit
        consent.settle()
    except KeyboardInterrupt:
        pass


def _restart(service_name: str, service_version: str | None, options: InitOptions, declared: Declared,
             install_global: bool) -> None:
    """The user said yes to the first-run question before any command ran: collect from this run on."""
    global _handle
    if _handle is not None:
        _handle.retire()
    _handle = None
    _init(service_name, service_version, options, install_global=install_global, declared=declared)


def _sdk_configured() -> bool:
    """An OpenTelemetry SDK provider is already installed (e.g. under ``opentelemetry-instrument``)."""
    if "opentelemetry.sdk.trace" not in sys.modules:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        return isinstance(trace.get_tracer_provider(), TracerProvider)
    except Exception:
        return False


def _flush_to_journal(t: Telemetry) -> None:
    t0 = time.perf_counter_ns()
    body = t.recorder.drain()
    if body is None:
        return
    s = t.settings
    now = time.time_ns()
    from otel_expansion.config import ensure_dir

    try:
        ensure_dir(s.home)
    except OSError as exc:  # read-only home, nobody's $HOME...: stand down quietly (visible in debug)
        if s.debug:
            warn(f"telemetry disabled for this run: cannot use {s.home}: {exc.strerror or exc}")
        return
    from otel_expansion import journal  # the write side: journal.store (the reading side) is not loaded

    try:
        listed = journal.names(s.home)  # listed once: the bounds here, whether a sender is due below
        if journal.full(s.home, listed):
            journal.note_dropped(s.home)
            return
        record = build_record(t, body, now)  # writes the session and id files too
        record["exit_ns"] = time.perf_counter_ns() - t0  # the exit path's own cost, up to this write
        written = journal.append(s.home, record, now)
        if s.endpoint:
            _remember_endpoint(s.home, s.endpoint)
    except OSError as exc:  # read-only or full disk: stand down for this run, nothing more
        if s.debug:
            warn(f"telemetry not saved for this run: {exc.strerror or exc}")
        return
    if s.debug:
        _debug_print(record, s, written)
    try:
        # the launcher (two modules) loads only to start a sender
        if journal.should_start(s.home, s.send, pending=len(listed) + 1):
            from otel_expansion.export import launcher
            from otel_expansion.workers import SENDER_ENTRY

            launcher.spawn(s.home, s.endpoint, s.send, entry=SENDER_ENTRY)
    except OSError as exc:
        if s.debug:
            warn(f"could not start the telemetry sender: {exc}")


def _remember_endpoint(home: str, endpoint: str) -> None:
    """Keep init(endpoint=...) beside the data so `otel-expansion flush` sends where the app would."""
    from otel_expansion.config import ENDPOINT_FILE, read_small, write_private

    path = os.path.join(home, ENDPOINT_FILE)
    if read_small(path, 4096) != endpoint.encode():
        write_private(path, endpoint.encode())


def build_record(t: Telemetry, body: Body, now_ns: int) -> Record:
    """A journal record: the run's body plus its format version, level, session and (redacted) resource.

    Put together here, not in ``journal.record`` (the reading side: a CLI's exit path does not load it);
    the version is the oldest that carries the body's meaning (``journal.version_of``)."""
    from otel_expansion.journal import version_of

    s = t.settings
    record: Record = {**body, "v": version_of(body), "level": int(s.level),  # type: ignore[typeddict-item]
                      "resource": resource_of(t)}
    if s.level >= levels.SESSIONS and body.get("commands"):
        from otel_expansion.collect import session_part

        record.update(session_part(s.home, now_ns, s.session_idle_s, len(body["commands"])))  # type: ignore[typeddict-item]
    return record


def resource_of(t: Telemetry) -> dict[str, AttrValue]:
    """This process's resource (see collect/__init__.py), cleaned by the handle's recorder."""
    from otel_expansion.collect import resource_for

    return resource_for(t.settings, t.recorder.clean, t.recorder.resource_keys)


def _debug_print(record: Record, settings: Settings, path: str) -> None:
    """Debug mode: convert this run's record now, in this process, and print it as it will be sent."""
    try:
        from otel_expansion.workers.inline import ingest_now

        ingest_now(settings, record, path)
    except Exception as exc:  # debug output must never break the host either
        _contained("debug", exc)


# -- module-level API (acts on the handle from init(); silently a no-op before init) ------------------
def active() -> Telemetry | None:
    """The handle of this process's init(), if any (for the auto-instrumentation entry points)."""
    return _handle


def feature(name: str, **attributes: object) -> None:
    """Count use of a feature; its attributes are kept (redacted) only at ``full`` level."""
    t = _handle
    if t is not None and not t._closed:  # Telemetry.feature, one call shorter (the recorder checks the level)
        try:
            t.recorder.feature(name, attributes, _caller=sys._getframe(1))
        except Exception as exc:
            _contained("feature", exc)


def command(name: str) -> _CommandScope:
    """Record a command: ``with command("sync"):`` or ``@command("sync")``."""
    literal = _literal or _load_literal()
    return _CommandScope(_handle, name, "literal" if literal(name, sys._getframe(1)) else "app")


def set_command(name: str) -> None:
    """Name this process's run, for programs no integration names (getopt, plain ``sys.argv``, invoke,
    plumbum): ``set_command("install")`` once the program knows which command the user chose. The run
    is still the process's one recorded invocation, from ``init()`` to exit, with its exact exit status;
    a framework's run in progress is renamed. Like ``command()``, a name written in the code is kept,
    one computed at run time only when listed in ``init(commands=...)``."""
    t = _handle
    if t is None or t._closed or type(name) is not str:
        return
    try:
        origin = _origin(name, sys._getframe(1))
        active = t.recorder.active
        if active is not None:
            active.name, active.origin = name, origin
        else:
            t.command_name = (name, origin)
    except Exception as exc:
        _contained("set_command", exc)


def record_exception(exc: BaseException) -> None:
    """Count a handled exception by type (message and stack, redacted, at ``full``)."""
    if _handle is not None:
        _handle.record_exception(exc)


def shutdown() -> None:
    """Flush and stop; runs automatically at exit. Never waits on the network."""
    if _handle is not None:
        _handle.shutdown()


def _reset_for_tests() -> None:
    """Forget the process-wide handle (tests only)."""
    global _handle
    if _handle is not None:
        atexit.unregister(_handle.shutdown)
    _handle = None
    from otel_expansion import collect as resource

    resource.forget()
