"""The otel-expansion command: status, show, flush, clear, level, consent, reset-id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from otel_expansion.cli.main import main
from tests.conftest import ROOT, RunCli, clean_env
from tests.export.servers import otlp_server, refused_port


def ox(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otel_expansion", *args, "--home", str(home)],
                          env=clean_env(home, **env), capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.fixture
def recorded(run_cli: RunCli, home: Path) -> Path:
    for args in (["hello", "a"], ["fail"], ["remote", "add", "u"]):
        run_cli(*args, OTEL_EXPANSION_SEND="false")
    return home


def test_status_reports_pending_work(recorded: Path) -> None:
    """status shows the level, its source and the pending journal records."""
    result = ox(recorded, "status", "--json")
    info = json.loads(result.stdout)
    assert info["level"] == "enhanced" and info["journal_records"] == 3 and len(info["installation_id"]) == 32


def test_show_prints_what_would_be_sent(recorded: Path) -> None:
    """show lists every pending record, already redacted, as JSON."""
    data = json.loads(ox(recorded, "show", "--json").stdout)
    assert [c["name"] for r in data["pending"]["journal"] for c in r["commands"]] == ["hello", "fail", "remote add"]
    readable = ox(recorded, "show").stdout
    assert "3 run records not converted yet" in readable
    assert "run records: hello (exit 0), fail (exit 1), remote add (exit 0)" in readable  # grouped, one line
    assert readable.rstrip().endswith("recently sent: 0 requests kept")  # the history only when asked
    detail = ox(recorded, "show", "--detail").stdout
    assert "run record: remote add (exit 0)" in detail  # one line per item on request


def test_show_summarises_and_keeps_the_sent_history_for_sent(recorded: Path) -> None:
    """After a flush, `show` is a few lines (a count of sent requests); `show --sent` lists them."""
    with otlp_server() as srv:
        assert ox(recorded, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
        n = len(srv.requests)
    brief = ox(recorded, "show").stdout.splitlines()
    assert brief[-1] == f"recently sent: {n} requests kept (`show --sent` lists them)"
    assert len(brief) <= 6, brief
    sent = ox(recorded, "show", "--sent").stdout
    assert sent.count(" bytes on the wire, batch ") == n and "span 'democli" not in sent
    assert "span 'democli" in ox(recorded, "show", "--sent", "--detail").stdout


def test_flush_sends_and_reports(recorded: Path) -> None:
    """flush sends everything now and prints a summary; exit 0 on success."""
    with otlp_server() as srv:
        result = ox(recorded, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        assert result.returncode == 0, result.stderr
        assert "ingested 3 run records" in result.stdout and "3 spans" in result.stdout
        assert {r.signal for r in srv.requests} == {"metrics", "traces"}
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        assert {r.header("user-agent") for r in srv.requests} == {f"otel-expansion/{version}"}  # the package's own
    status = json.loads(ox(recorded, "status", "--json").stdout)
    assert status["journal_records"] == 0 and status["spool_spans"] == 0


def test_flush_fails_loudly_when_refused(recorded: Path) -> None:
    """flush exits non-zero with the reason when the collector cannot be reached; data stays."""
    with refused_port() as addr:
        result = ox(recorded, "flush", "--timeout", "5", OTEL_EXPORTER_OTLP_ENDPOINT=addr.url)
    assert result.returncode == 1 and "error:" in result.stderr
    assert json.loads(ox(recorded, "status", "--json").stdout)["spool_spans"] == 3


def test_flush_quiet_prints_nothing_unless_it_fails(recorded: Path) -> None:
    """--quiet (documented in --help): a successful flush prints nothing; a failed one still says why, exit 1."""
    assert "print nothing unless it fails" in ox(recorded, "flush", "--help").stdout
    with otlp_server() as srv:
        result = ox(recorded, "flush", "--quiet", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result
        assert {r.signal for r in srv.requests} == {"metrics", "traces"}
    subprocess.run([sys.executable, str(ROOT / "examples" / "democli.py"), "hello", "b"], check=True, timeout=60,
                   env=clean_env(recorded, OTEL_EXPANSION_SEND="false"), capture_output=True)
    with refused_port() as addr:
        failed = ox(recorded, "flush", "--quiet", "--timeout", "1", OTEL_EXPORTER_OTLP_ENDPOINT=addr.url)
    assert failed.returncode == 1 and failed.stdout == "" and failed.stderr.startswith("error: "), failed


def test_clear_deletes_pending(recorded: Path) -> None:
    """clear removes journal and spool contents."""
    assert "cleared 3 journal records" in ox(recorded, "clear").stdout
    assert json.loads(ox(recorded, "status", "--json").stdout)["journal_records"] == 0


def test_level_and_consent_persist(run_cli: RunCli, home: Path) -> None:
    """`level basic` changes what the next run records; `consent deny` deletes pending data and stops."""
    assert ox(home, "level", "basic").returncode == 0
    run_cli("hello", "a", OTEL_EXPANSION_SEND="false")
    from tests.conftest import journal_records

    (record,) = journal_records(home)
    assert record["level"] == 1 and "session" not in record
    assert ox(home, "consent", "deny").returncode == 0
    assert ox(home, "consent", "status").stdout.strip() == "denied"
    assert journal_records(home) == []  # withdrawing consent deleted the pending record
    run_cli("hello", "b", OTEL_EXPANSION_SEND="false")
    assert journal_records(home) == []


def test_reset_id_changes_the_installation_id(recorded: Path) -> None:
    """reset-id replaces the anonymous id with a new random one."""
    before = json.loads(ox(recorded, "status", "--json").stdout)["installation_id"]
    ox(recorded, "reset-id")
    after = json.loads(ox(recorded, "status", "--json").stdout)["installation_id"]
    assert before != after and len(after) == 32


def test_unknown_app_is_a_clear_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --service/--home and several known apps, the command says which ones exist."""
    monkeypatch.delenv("OTEL_EXPANSION_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    (tmp_path / "otel-expansion" / "a").mkdir(parents=True)
    (tmp_path / "otel-expansion" / "b").mkdir(parents=True)
    assert main(["status"]) == 2
    assert "Known services: a, b" in capsys.readouterr().err
    assert main(["level", "loud", "--service", "a"]) == 2


def test_docs_writes_telemetry_md(tmp_path: Path) -> None:
    """docs regenerates the signal reference."""
    assert main(["docs", "--output", str(tmp_path / "T.md")]) == 0
    assert "cli.command.invocations" in (tmp_path / "T.md").read_text()


def test_flush_retries_a_flaky_collector_within_its_timeout(recorded: Path) -> None:
    """Transient 503s during flush are retried with short backoff; everything arrives, exit 0."""
    from tests.export.servers import flaky

    with otlp_server(flaky(2)) as srv:
        result = ox(recorded, "flush", "--timeout", "20", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "retried 2 times" in result.stdout and "3 spans" in result.stdout
        assert len(srv.requests) >= 4


def test_flush_uses_the_endpoint_the_app_configured(tmp_path: Path) -> None:
    """init(endpoint=...) is remembered, so a later flush sends there without any variable."""
    home = tmp_path / "home"
    with otlp_server() as srv:
        app = f"import otel_expansion\notel_expansion.init('ep', endpoint={srv.url!r}, send=False)\n" \
              "with otel_expansion.command('x'):\n    pass\n"
        subprocess.run([sys.executable, "-c", app], env=clean_env(home), check=True, timeout=30, cwd=ROOT)
        result = ox(home, "flush")
        assert result.returncode == 0 and srv.url in result.stderr
        assert any(r.signal == "traces" for r in srv.requests)


def test_debug_shows_effective_configuration_without_secrets(home: Path) -> None:
    """debug prints the resolved URLs and variables, masking headers."""
    result = ox(home, "debug", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9999",
                OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20s3cr3t-value")
    assert result.returncode == 0
    assert "http://127.0.0.1:9999/v1/traces" in result.stdout and "s3cr3t-value" not in result.stdout
    assert "OTEL_EXPORTER_OTLP_HEADERS=<set>" in result.stdout


def test_withdrawing_consent_deletes_what_was_pending(recorded: Path) -> None:
    """`consent deny` deletes unsent data, and a later sender sends nothing."""
    (recorded / "spool.sqlite.corrupt-1").write_bytes(b"old")
    result = ox(recorded, "consent", "deny")
    assert result.returncode == 0 and "deleted 3 pending run records" in result.stdout
    assert not list(recorded.glob("spool.sqlite.corrupt-*"))
    with otlp_server() as srv:
        flushed = ox(recorded, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        assert srv.requests == [] and "denied" in flushed.stderr


def test_status_names_the_app_even_in_a_custom_home(recorded: Path) -> None:
    """A home given by path is still labelled with the app's own name."""
    assert json.loads(ox(recorded, "status", "--json").stdout)["service"] == "democli"


def test_reset_id_also_starts_a_new_session(recorded: Path, run_cli: RunCli) -> None:
    """After reset-id nothing links old and new data: the session id changes too."""
    from tests.conftest import journal_records

    before = {r["session"] for r in journal_records(recorded)}
    ox(recorded, "reset-id")
    run_cli("hello", "z", OTEL_EXPANSION_SEND="false")
    after = journal_records(recorded)[-1]["session"]
    assert after not in before


def test_show_groups_the_commands_inside_one_record(tmp_path: Path) -> None:
    """A long-running program's record holds many commands: `show` groups them by command and exit status
    as it groups separate runs (was: every command of the record on the line)."""
    home = tmp_path / "home"
    script = tmp_path / "loop.py"
    script.write_text("import otel_expansion\notel_expansion.init('loop', mode='cli', instrument=False)\n"
                      "for i in range(40):\n    try:\n        with otel_expansion.command('get'):\n"
                      "            if i % 4 == 0:\n                raise KeyError(i)\n"
                      "    except KeyError:\n        pass\n")
    subprocess.run([sys.executable, str(script)], env=clean_env(home, OTEL_EXPANSION_SEND="false"), check=True,
                   timeout=60)
    readable = ox(home, "show").stdout
    assert "run records: get (exit 1) x10, get (exit 0) x30" in readable, readable  # in order of first seen
