"""The quickstarts work as written: every code block of each page runs, end to end, against the embedded
backend, and the report shows what the page says it shows.

A page declares what its report must show in an ``<!-- expect-report: CMD runs=N errors=M; ... -->``
comment; a page whose framework is not supported yet says ``<!-- quickstart: pending ... -->`` and has no
code blocks. Python blocks with ``title="FILE"`` are written to FILE; bash blocks run in order in one
``bash -e`` in a fresh directory with the test environment's ``python`` and ``otel-expansion`` first on
PATH and private state and data directories. The one change made to the text: the backend's port 4319
becomes a free port (engineers and CI jobs share machines).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTARTS = sorted((ROOT / "docs" / "quickstart").glob("*.md"))
PAGES = [ROOT / "README.md", *QUICKSTARTS]
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
EXPECT = re.compile(r"<!-- expect-report: (.*?) -->")
PENDING = "<!-- quickstart: pending"


def blocks(page: Path) -> list[tuple[str, str, str]]:
    """(language, info after the language, body) of each fenced block of the page's quickstart part."""
    text = page.read_text()
    if page.name == "README.md":  # the front page's quickstart is its "Five minutes" section
        start = text.index("## Five minutes")
        end = text.find("\n## ", start + 1)
        text = text[start:end if end > 0 else None]
    return [(m.group(1), m.group(2), m.group(3)) for m in FENCE.finditer(text)]


def expectations(page: Path) -> dict[str, tuple[int, int]]:
    """command -> (runs, errors) from the page's expect-report comment."""
    found = EXPECT.search(page.read_text())
    assert found, f"{page.name}: no <!-- expect-report: ... --> comment saying what the report shows"
    out: dict[str, tuple[int, int]] = {}
    for item in found.group(1).split(";"):
        name, runs, errors = item.split()
        out[name] = (int(runs.removeprefix("runs=")), int(errors.removeprefix("errors=")))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _top_commands(report: str) -> dict[str, tuple[int, int]]:
    """command -> (runs, errors) read from the terminal report's "Top commands" table."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Top commands"))
    rows: dict[str, tuple[int, int]] = {}
    assert lines[start + 1].split()[:3] == ["command", "runs", "errors"], lines[start + 1]
    for line in lines[start + 2:]:  # after the title and the header row
        if not line.strip() or set(line.strip()) <= set("-| "):
            break
        cells = line.split()
        rows[cells[0]] = (int(cells[1].replace(",", "")), int(cells[2].replace(",", "")))
    return rows


RUNNABLE = [p for p in PAGES if PENDING not in p.read_text()]


def test_every_quickstart_page_is_runnable_or_marked_pending() -> None:
    """A pending page (framework not supported yet) has no code blocks; every other page has some."""
    assert {p.stem for p in QUICKSTARTS} >= {"index", "click", "typer", "argparse", "manual", "instrument"}
    for page in PAGES:
        if PENDING in page.read_text():
            assert not blocks(page), page.name
        else:
            assert any(lang == "bash" for lang, _, _ in blocks(page)), page.name


@pytest.mark.slow  # one real backend and a handful of CLI runs per page: ~1 min for all on a busy 2-core box
@pytest.mark.parametrize("page", RUNNABLE, ids=[p.relative_to(ROOT).as_posix() for p in RUNNABLE])
def test_quickstart_runs_as_written(page: Path, tmp_path: Path) -> None:
    """Run the page's blocks in order; the report it prints shows each expected command exactly."""
    expected = expectations(page)
    port = _free_port()
    script = ["trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for lang, info, body in blocks(page):
        title = re.search(r'title="([^"]+)"', info)
        if lang == "python" and title:
            (tmp_path / title.group(1)).write_text(body)
        elif lang == "bash":
            script.append(body.replace("4319", str(port)))
        else:
            pytest.fail(f"{page.name}: a {lang} block that is neither a file to write nor commands to run")
    bin_dir = os.path.dirname(sys.executable)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OTEL_") and k not in ("DO_NOT_TRACK", "CI", "GITHUB_ACTIONS")}
    env.update(PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]), HOME=str(tmp_path),
               XDG_STATE_HOME=str(tmp_path / "state"), XDG_DATA_HOME=str(tmp_path / "data"))
    proc = subprocess.Popen(["bash", "-e", "-c", "\n".join(script)], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"{page.name} failed ({proc.returncode}):\n{out}\n{err}"
    assert "otel-expansion report" in out, out
    rows = _top_commands(out)
    for command, (runs, errors) in expected.items():
        assert rows.get(command) == (runs, errors), f"{page.name}: {command} in report:\n{out}"
