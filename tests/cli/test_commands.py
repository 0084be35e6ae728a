"""Every `otel-expansion` command: output, --json shape, exit codes, and a bad-input table.

Each bad input must give one line naming the problem, a non-zero exit, no traceback and no file written.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import ox
from tests.conftest import EXAMPLES, ROOT, RunCli, clean_env
from tests.export.servers import otlp_server

STATUS_KEYS = {
    "service", "home", "level", "level_source", "opted_out_by", "app_opt_out_variable", "app_opt_out_set", "consent",
    "debug", "dry_run", "endpoint_problem", "endpoint", "last_send", "journal_records", "spool_series", "spool_spans",
    "spool_batches_in_flight", "spool_bytes", "sent_kept", "counters", "sender_running", "next_send",
    "installation_id",
}
FLUSH_KEYS = {"service", "ok", "error", "ingested", "unreadable", "batches_sent", "spans_sent", "points_sent",
              "bytes_sent", "rejected", "dropped", "kept_off_wire", "retries", "pending_series", "pending_spans",
              "retry_at"}
SENT_KEYS = {"time", "endpoint", "batch_id", "signal", "items", "wire_bytes", "protocol", "status", "body_bytes",
             "content"}
CLEARED = {"journal_records", "spool_rows", "sent_entries"}


@pytest.fixture
def recorded(run_cli: RunCli, home: Path) -> Path:
    for args in (["hello", "a"], ["fail"]):
        run_cli(*args, OTEL_EXPANSION_SEND="false")
    return home


def js(home: Path, *args: str, **env: str) -> dict[str, object]:
    result = ox(home, *args, "--json", **env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_json_shapes(recorded: Path) -> None:
    """Each command's --json document has the documented keys (README: `--json` output)."""
    assert set(js(recorded, "status")) == STATUS_KEYS
    shown = js(recorded, "show")
    assert set(shown) == {"pending", "sent"} and set(shown["pending"]) == {"journal", "traces", "metrics"}  # type: ignore[arg-type]
    assert set(js(recorded, "show", "--pending")) == {"pending"}
    assert set(js(recorded, "level")) == {"service", "level", "level_source"}
    assert set(js(recorded, "consent", "status")) == {"service", "consent"}
    assert set(js(recorded, "debug")) >= {"service", "level", "level_source", "debug", "debug_source", "dry_run",
                                          "traces_url", "metrics_url", "environment"}
    assert set(js(recorded, "debug", "off")) == {"service", "debug", "dry_run", "effective_debug", "debug_source",
                                               "debug_json"}
    with otlp_server() as srv:
        flushed = js(recorded, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
    assert set(flushed) == FLUSH_KEYS and flushed["ok"] is True and flushed["spans_sent"] == 2
    sent = js(recorded, "show", "--sent")["sent"]
    assert sent and all(set(item) == SENT_KEYS for item in sent)  # type: ignore[union-attr]
    assert set(js(recorded, "reset-id")) == {"service", "installation_id"}
    assert set(js(recorded, "level", "basic")) == {"service", "level", "level_source"}
    assert set(js(recorded, "consent", "grant")) == {"service", "consent", "deleted"}
    cleared = js(recorded, "clear")
    assert set(cleared) == {"service", "cleared"} and set(cleared["cleared"]) == CLEARED  # type: ignore[arg-type]


def test_status_in_plain_words(recorded: Path, run_cli: RunCli) -> None:
    """status names the endpoint, the last send (and its error) and the app's own opt-out variable."""
    text = ox(recorded, "status", OTEL_EXPORTER_OTLP_ENDPOINT="http://user:pw@127.0.0.1:9/x?k=v").stdout
    assert "last send: none yet (no send attempt counted)" in text and "DEMOCLI_NO_TELEMETRY (not set)" in text
    assert re.search(r"\n  consent +not asked yet\n", text), text  # in words
    assert "sends to http://<credentials>@127.0.0.1:9/x" in text and "pw" not in text
    assert "None" not in text and "endpoint problem" not in text  # no problem: nothing to say, not "None"
    set_text = ox(recorded, "status", DEMOCLI_NO_TELEMETRY="1").stdout
    assert "DEMOCLI_NO_TELEMETRY (set: telemetry is off)" in set_text
    with otlp_server() as srv:
        ox(recorded, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
    assert " ok, " in ox(recorded, "status").stdout
    from tests.export.servers import refused_port

    run_cli("hello", "again", OTEL_EXPANSION_SEND="false")
    with refused_port() as addr:
        ox(recorded, "flush", "--timeout", "1", OTEL_EXPORTER_OTLP_ENDPOINT=addr.url)
    status = js(recorded, "status")
    assert status["last_send"]["ok"] is False and status["last_send"]["error"]  # type: ignore[index]
    assert "FAILED:" in ox(recorded, "status").stdout


def test_status_after_a_sender_killed_mid_send_says_what_is_known(recorded: Path) -> None:
    """A flush killed with SIGKILL while its request waits: status counts the attempt and the batch in
    flight and claims nothing it cannot know (nothing was cleared); the next flush sends the batch."""
    from tests.export.servers import slow

    with otlp_server(slow(30)) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "otel_expansion", "flush", "--home", str(recorded),
                                 "--timeout", "60"], env=clean_env(recorded, OTEL_EXPORTER_OTLP_ENDPOINT=srv.url),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while not srv.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert srv.requests, "the flush never sent"
        finally:
            proc.kill()
            proc.wait(10)
    text = ox(recorded, "status").stdout
    assert "  last send: no result recorded (1 send attempt counted; 1 batch still in flight: a send round stopped" \
           " before it finished; the next one sends it again)\n" in text, text
    assert "cleared" not in text
    with otlp_server() as srv:
        assert ox(recorded, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
    assert " ok, " in ox(recorded, "status").stdout


def test_self_health_is_current_after_a_flush(recorded: Path) -> None:
    """The attempts and failures a flush made are sent in that same flush, not one round later."""
    with otlp_server() as srv:
        assert ox(recorded, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
        from tests.cli.helpers import flatten, received

        _, series = flatten(received(srv.requests))
        n_requests = len(srv.requests)
    names = {key[2] for key in series}
    assert {"otel_expansion.export.attempts", "otel_expansion.export.duration", "otel_expansion.sender.duration",
            "otel_expansion.sender.cpu_time", "otel_expansion.spool.size", "otel_expansion.journal.backlog",
            "otel_expansion.record.duration", "otel_expansion.exit.duration"} <= names
    attempts = sum(v["value"] for k, v in series.items() if k[2] == "otel_expansion.export.attempts")
    assert attempts == n_requests - 1  # every request but the one carrying the count itself
    assert not any(k[2] == "otel_expansion.export.failures" for k in series)
    latency = [v for k, v in series.items() if k[2] == "otel_expansion.export.duration"]
    assert sum(v["count"] for v in latency) == n_requests - 1
    backlog = next(v for k, v in series.items() if k[2] == "otel_expansion.journal.backlog")
    assert backlog["sum"] == 2.0  # two run records waited when the round began


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[path] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _foreign_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    return path


BAD_INPUTS: list[tuple[str, list[str], int, str]] = [
    ("status of an unknown service", ["status", "--service", "nosuchapp"], 2, "no telemetry has been recorded"),
    ("show of an unknown service", ["show", "--service", "nosuchapp"], 2, "no telemetry has been recorded"),
    ("flush of an unknown service", ["flush", "--service", "nosuchapp"], 2, "no telemetry has been recorded"),
    ("clear of an unknown service", ["clear", "--service", "nosuchapp"], 2, "no telemetry has been recorded"),
    ("reset-id of an unknown service", ["reset-id", "--service", "nosuchapp"], 2, "no telemetry has been recorded"),
    ("ui of an unknown service", ["ui", "--service", "nosuchapp"], 2, "no telemetry has been recorded"),
    ("consent status, unknown", ["consent", "status", "--service", "nosuchapp"], 2, "no telemetry has been recorded"),
    ("level shown, unknown", ["level", "--service", "nosuchapp"], 2, "no telemetry has been recorded"),
    ("home is a file", ["status", "--home", "{file}"], 2, "is not a directory"),
    *[(f"home is a symbolic link, {' '.join(cmd)}", [*cmd, "--home", "{link}"], 1,
       "the home {link} is refused: it is a symbolic link; telemetry stands down there")
      for cmd in (["status"], ["status", "--json"], ["flush"], ["flush", "--quiet"], ["show"], ["clear"], ["level"],
                  ["level", "off"], ["consent", "status"], ["consent", "grant"], ["reset-id"], ["debug"],
                  ["debug", "on"], ["ui"])],
    ("foreign spool file", ["status", "--home", "{foreign_home}"], 1, "is not an otel-expansion spool"),
    ("foreign spool, show", ["show", "--home", "{foreign_home}"], 1, "is not an otel-expansion spool"),
    ("foreign spool, clear", ["clear", "--home", "{foreign_home}"], 1, "is not an otel-expansion spool"),
    ("bad --since", ["show", "--service", "app", "--since", "yesterday-ish"], 2, "--since"),
    ("bad --signal", ["show", "--service", "app", "--signal", "logs"], 2, "invalid choice"),
    ("bad --limit", ["show", "--service", "app", "--limit", "0"], 2, "--limit"),
    ("bad --timeout", ["flush", "--service", "app", "--timeout", "-1"], 2, "--timeout"),
    ("bad level", ["level", "loud", "--service", "app"], 2, "level"),
    ("bad consent action", ["consent", "maybe", "--service", "app"], 2, "invalid choice"),
    ("bad debug action", ["debug", "loud", "--service", "app"], 2, "invalid choice"),
    ("port out of range", ["ui", "--service", "app", "--port", "70000"], 2, "not a port number"),
    ("busy port", ["ui", "--service", "app", "--port", "{busy}"], 1, "cannot listen on 127.0.0.1"),
    ("missing backend database", ["report", "--db", "{missing}"], 2, "no backend database"),
    ("foreign backend database", ["report", "--db", "{foreign_db}"], 1, "not an otel-expansion backend database"),
    ("not a database at all", ["report", "--db", "{file}"], 1, "not an otel-expansion backend database"),
    ("busy backend port", ["backend", "serve", "--port", "{busy}", "--db", "{db_new}"], 1, "in use"),
    ("docs into a missing folder", ["docs", "--output", "{missing}/x/TELEMETRY.md"], 1, "No such file"),
    ("unknown command", ["frobnicate"], 2, "invalid choice"),
    ("no command", [], 2, "required"),
]


@pytest.mark.parametrize(("case", "argv", "code", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input(tmp_path: Path, busy_port: int, run_cli: RunCli, case: str, argv: list[str], code: int,
                   message: str) -> None:
    """One line naming the problem, the documented exit code, no traceback, nothing written."""
    state = tmp_path / "state"
    app_home = state / "otel-expansion" / "app"
    app_home.mkdir(parents=True)
    (app_home / "service").write_text("app")
    plain = tmp_path / "plain.txt"
    plain.write_text("not a database\n")
    foreign_home = tmp_path / "foreign"
    foreign_home.mkdir()
    _foreign_db(foreign_home / "spool.sqlite")
    values = {"file": str(plain), "foreign_home": str(foreign_home), "busy": str(busy_port),
              "missing": str(tmp_path / "missing"), "foreign_db": str(_foreign_db(tmp_path / "foreign.db")),
              "db_new": str(tmp_path / "backend" / "t.sqlite"), "link": str(tmp_path / "linkhome")}
    (tmp_path / "linkhome").symlink_to(app_home)
    args = [a.format(**values) for a in argv]
    before = snapshot(tmp_path)
    env = clean_env(tmp_path / "unused", XDG_STATE_HOME=str(state), HOME=str(tmp_path / "userhome"))
    del env["OTEL_EXPANSION_HOME"]
    result = subprocess.run([sys.executable, "-m", "otel_expansion", *args], env=env, capture_output=True, text=True,
                            timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and message.format(**values) in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("otel-expansion"), result.stderr
    after = snapshot(tmp_path)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert not changed, f"{case}: wrote {sorted(changed)}"


def test_bad_input_with_json_gives_a_json_error(tmp_path: Path) -> None:
    """With --json an error is also a JSON document on stdout: {"error", "exit_code"}."""
    result = ox(tmp_path / "nothing", "status", "--json")
    assert result.returncode == 2 and json.loads(result.stdout) == {
        "error": result.stderr.strip().removeprefix("otel-expansion: "), "exit_code": 2}
    assert not (tmp_path / "nothing").exists()


def _closed_pipe_run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with stdout a pipe whose reader is already gone (as `| head` leaves it)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(argv, env=env, stdout=write_end, stderr=subprocess.PIPE, cwd=ROOT, timeout=60,
                              stdin=subprocess.DEVNULL)
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr.decode()


def test_closed_pipe_ends_quietly(recorded: Path, tmp_path: Path) -> None:
    """`otel-expansion COMMAND | head` for every command that prints, `report` included: no message,
    no traceback, exit 141 (128 + SIGPIPE, what `git log | head` leaves)."""
    from otel_expansion.backend.store import Store

    db = tmp_path / "report.sqlite"
    with Store(db):
        pass
    env = clean_env(recorded)
    home = ["--home", str(recorded)]
    for args in (["status", *home], ["status", "--json", *home], ["show", *home], ["show", "--json", *home],
                 ["show", "--sent", *home], ["debug", *home], ["level", *home], ["consent", "status", *home],
                 ["docs", "--output", "-"], ["report", "--db", str(db)], ["report", "--json", "--db", str(db)]):
        code, err = _closed_pipe_run([sys.executable, "-m", "otel_expansion", *args], env)
        assert (code, err) == (141, ""), args
    code, err = _closed_pipe_run([sys.executable, "-m", "otel_expansion", "--help"], env)
    assert err == "" and code == 0  # argparse's own help ignores a closed pipe: quiet as well


def test_closed_pipe_inside_a_host_app_ends_quietly(recorded: Path) -> None:
    """`democli telemetry status | head` (the controls inside the host): quiet too, nothing says otel-expansion."""
    env = clean_env(recorded)
    for args in (["status"], ["show"], ["show", "--json"], ["debug"], ["docs"]):
        code, err = _closed_pipe_run([sys.executable, str(EXAMPLES / "democli.py"), "telemetry", *args], env)
        assert (code, err) == (141, ""), args


def test_read_commands_never_write(recorded: Path) -> None:
    """status, show, level, consent status, debug and ui's state leave the state directory as it was."""
    before = snapshot(recorded)
    for args in (["status"], ["status", "--json"], ["show"], ["show", "--json", "--sent"], ["level"],
                 ["consent", "status"], ["debug"], ["debug", "--json"]):
        assert ox(recorded, *args).returncode == 0, args
    assert snapshot(recorded) == before


def test_debug_on_is_stored_and_the_variable_wins(recorded: Path) -> None:
    """`debug on` persists for the app; OTEL_EXPANSION_DEBUG=0 still wins, and debug says so."""
    assert "debug on" in ox(recorded, "debug", "on").stdout
    assert js(recorded, "debug")["debug"] is True and js(recorded, "debug")["debug_source"] == "user"
    overridden = ox(recorded, "debug", "on", OTEL_EXPANSION_DEBUG="0")
    assert "OTEL_EXPANSION_DEBUG=0 is set and wins" in overridden.stdout
    assert js(recorded, "debug", OTEL_EXPANSION_DEBUG="0")["debug"] is False


def test_damaged_spool_is_reported_by_reads_and_recovered_by_flush(recorded: Path) -> None:
    """status/show name a damaged spool and leave it; flush moves it aside and still delivers."""
    spool = recorded / "spool.sqlite"
    spool.write_bytes(b"garbage" * 100)
    status = ox(recorded, "status")
    assert status.returncode == 0 and "is damaged" in status.stderr and spool.read_bytes() == b"garbage" * 100
    with otlp_server() as srv:
        assert ox(recorded, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
        assert any(r.signal == "traces" for r in srv.requests)
    assert list(recorded.glob("spool.sqlite.corrupt-*"))
