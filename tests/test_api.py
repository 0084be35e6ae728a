"""The public API: exported names, idempotent init, safe before init, decorator and context manager."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import otel_expansion
from otel_expansion import _runtime
from otel_expansion.collect import integrations
from otel_expansion.config.warn_once import forget


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OTEL_EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OTEL_EXPANSION_SEND", "false")
    for var in ("DO_NOT_TRACK", "OTEL_SDK_DISABLED", "OTEL_EXPANSION_LEVEL"):
        monkeypatch.delenv(var, raising=False)
    _runtime._reset_for_tests()
    forget()  # warnings are once per process (their text names no value): each test looks for its own
    yield
    integrations.uninstall_all()
    _runtime._reset_for_tests()


def test_exported_names() -> None:
    """The names other tools depend on stay exported."""
    assert set(otel_expansion.__all__) == {"Level", "Telemetry", "__version__", "command", "feature", "init",
                                           "record_exception", "shutdown", "add_telemetry_commands", "Feature",
                                           "declare_features", "set_command", "wrap"}


def test_init_is_idempotent() -> None:
    """A second init() returns the first handle, whatever its arguments."""
    first = otel_expansion.init("a", instrument=False)
    assert otel_expansion.init("b", level="full") is first and first.settings.service_name == "a"


def test_calls_before_init_are_noops() -> None:
    """feature/command/record_exception/shutdown before init() do nothing and never raise."""
    otel_expansion.feature("x", a=1)
    otel_expansion.record_exception(ValueError())
    with otel_expansion.command("y"):
        pass
    otel_expansion.shutdown()


def test_command_decorator_and_context_manager(tmp_path: Path) -> None:
    """Both forms record one command each and re-raise the host's exception unchanged."""
    t = otel_expansion.init("app", instrument=False)

    @otel_expansion.command("sync")
    def sync() -> str:
        """Docstring kept."""
        return "done"

    assert sync() == "done" and sync.__name__ == "sync" and sync.__doc__ == "Docstring kept."
    with pytest.raises(KeyError), otel_expansion.command("lookup"):
        raise KeyError("k")
    body = t.recorder.drain()
    assert body is not None
    assert [(c["name"], c["exit"], c.get("error")) for c in body["commands"]] == [
        ("sync", 0, None), ("lookup", 1, "KeyError")]


def test_unknown_option_warns_and_bad_level_falls_back(capsys: pytest.CaptureFixture[str]) -> None:
    """init() never raises on bad options: it warns once and uses safe defaults."""
    t = otel_expansion.init("app", level="loud", colour="blue", instrument=False)
    err = capsys.readouterr().err
    assert t.enabled and str(t.level) == "enhanced" and "colour" in err and "init(level=...) is not" in err
    assert "loud" not in err  # warnings name the option, never repeat the value (docs/configuration.md)


def test_shutdown_writes_one_journal_record(tmp_path: Path) -> None:
    """shutdown() persists what was recorded, locally, once."""
    t = otel_expansion.init("app", instrument=False)
    with otel_expansion.command("x"):
        pass
    otel_expansion.shutdown()
    otel_expansion.shutdown()
    assert len(list((tmp_path / "home" / "journal").iterdir())) == 1 and not t.enabled


def test_identifying_resource_attributes_are_not_taken_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_RESOURCE_ATTRIBUTES reaches the data only for keys the app allow-lists, never identifying ones."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES",
                       "host.name=vm1,enduser.id=u12345,deployment.environment=prod,deployment.region=jdoe")
    t = otel_expansion.init("app", instrument=False, resource_keys={
        "deployment.environment": ["prod", "staging"], "host.name": None, "deployment.region": None})
    attrs = _runtime.resource_of(t)
    assert attrs["deployment.environment"] == "prod" and "host.name" not in attrs and "enduser.id" not in attrs
    assert attrs["deployment.region"] == "<dynamic>"  # allow-listed, but its value is in no vocabulary


def test_ambient_resource_attributes_need_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without resource_keys nothing of the user's OTEL_RESOURCE_ATTRIBUTES is taken over."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,team=jane-doe")
    t = otel_expansion.init("app", "1.0+jane.doe.laptop", instrument=False)
    attrs = _runtime.resource_of(t)
    assert "deployment.environment" not in attrs and "team" not in attrs
    assert attrs["service.version"] == "1.0"


FORKING_CLI = """
import os, otel_expansion
t = otel_expansion.init("app", instrument=False)
with otel_expansion.command("serve"):
    pid = os.fork()
    if pid == 0:
        t.shutdown()
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_forked_child_does_not_report_the_parent_run(tmp_path: Path) -> None:
    """A CLI that forks (daemonizes) is still one invocation.

    Run as its own program: forking the test runner itself (threads of earlier tests holding locks)
    can deadlock the child in the interpreter's at-fork handlers.
    """
    import subprocess
    import sys

    from tests.conftest import clean_env

    home = tmp_path / "home"
    subprocess.run([sys.executable, "-c", FORKING_CLI], env=clean_env(home, OTEL_EXPANSION_SEND="false"),
                   check=True, timeout=60)
    assert len(list((home / "journal").iterdir())) == 1


def test_control_characters_never_stored() -> None:
    """Escape and bidi-override characters in names are neutralised before storage."""
    t = otel_expansion.init("app", instrument=False)
    with otel_expansion.command("evil\x1b[2J\u202ename"):
        pass
    body = t.recorder.drain()
    assert body is not None and body["commands"][0]["name"] == "<dynamic>"  # unprintable: never kept


def test_option_of_wrong_type_loses_only_that_option(capsys: pytest.CaptureFixture[str]) -> None:
    """init(opt_out_env=5) warns and ignores that option; telemetry itself still works."""
    t = otel_expansion.init("app", opt_out_env=5, instrument=False)  # type: ignore[arg-type]
    assert t.enabled and "opt_out_env" in capsys.readouterr().err
