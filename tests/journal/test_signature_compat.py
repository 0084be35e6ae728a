"""Journal records with error signatures, read by releases from before signatures: every count exact.

The signature is an added field (``sig`` on commands and handled exceptions; ``error_signatures`` and
``handled_signatures`` beside the unchanged totals of a service's usage aggregate), so records keep their
version (journal/record.py). Each older release is the package as it was in this repository's history
(``git archive`` of the commit, run with this venv's dependencies): 0.2 (the release before round 3, which
reads version-1 records only) and round 3's 0.3 before signatures (which also reads version 2, a service's
usage aggregate). Each replays records the new recorder wrote; its error and handled-exception counts must
be the new release's, summed over signatures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from otel_expansion import _runtime
from otel_expansion.collect.usage import Usage
from otel_expansion.config import Level, resolve
from otel_expansion.journal.record import check, version_of
from otel_expansion.sdk.replay import Replayer
from tests.conftest import ROOT

RELEASES = {"0.2": "8963b28", "0.3 before signatures": "1e50bd7"}

CHILD = """
import json, sys
from otel_expansion.config.settings import resolve
from otel_expansion.journal.record import check
from otel_expansion.sdk.replay import Replayer
records = json.load(open(sys.argv[1], encoding="utf-8"))
settings = resolve("sender", environ={}, home=sys.argv[2])
points, _ = Replayer(settings).replay([check(r) for r in records])
out = {}
for p in points:
    if p.key.name in ("cli.command.errors", "cli.exceptions.handled"):
        key = p.key.name + " " + json.dumps(sorted([k, str(v)] for k, v in p.key.attributes))
        out[key] = out.get(key, 0) + (p.value or p.count)
print(json.dumps(out))
"""


def fetch() -> None:
    raise ConnectionError("refused")


def pull() -> None:
    fetch()


def cli_record(home: Path) -> dict[str, Any]:
    """A CLI's journal record as the new release writes it: three failures (two paths), a success, two
    handled exceptions."""
    home.mkdir(parents=True, exist_ok=True)
    settings = resolve("svc", "2.0", environ={}, home=str(home), level=Level.FULL, send=False)
    t = _runtime.Telemetry(settings)
    rec = t.recorder
    for fn in (pull, fetch, pull):
        run = rec.begin("sync", "svc", origin="literal")
        try:
            fn()
        except ConnectionError as exc:
            rec.end(run, exc)
        try:
            fn()
        except ConnectionError as exc:
            rec.exception(exc)
    rec.end(rec.begin("sync", "svc", origin="literal"))
    body = rec.drain()
    assert body is not None
    assert len({c.get("sig") for c in body["commands"] if c.get("sig")}) == 2
    return dict(_runtime.build_record(t, body, 1_764_480_000 * 10**9))


def service_record() -> dict[str, Any]:
    """A long-running program's usage aggregate, with signed and unsigned failures."""
    usage = Usage()
    for sig in ("m:a", "m:a", "m:b", None):
        cmd: dict[str, Any] = {"name": "job", "exe": "svc", "start": 1, "end": 2, "exit": 1, "error": "OSError"}
        if sig:
            cmd["sig"] = sig
        usage.command(cmd)  # type: ignore[arg-type]
    usage.exception("KeyError", "m:a")
    usage.exception("KeyError", None)
    snap = usage.take()
    assert snap is not None
    return {"v": 2, "level": 1, "resource": {"service.name": "svc"}, "metered": 1, "usage": snap, "commands": []}


def counts(points: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for p in points:
        if p.key.name in ("cli.command.errors", "cli.exceptions.handled"):
            key = (p.key.name, tuple(sorted((k, str(v)) for k, v in p.key.attributes)))
            out[key] = out.get(key, 0) + (p.value or p.count)
    return out


def without_signatures(values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """The counts summed over signatures, keyed as the child prints them."""
    out: dict[str, float] = {}
    for (name, attrs), v in values.items():
        key = name + " " + json.dumps(sorted([k, s] for k, s in attrs if k != "cli.error.signature"))
        out[key] = out.get(key, 0) + v
    return out


def unsigned(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as a release before signatures wrote it: no ``sig``, no signature lists."""
    out = json.loads(json.dumps(record, default=list))
    for item in [*(out.get("commands") or ()), *(out.get("exceptions") or ())]:
        if isinstance(item, dict):
            item.pop("sig", None)
    usage = out.get("usage")
    if isinstance(usage, dict):
        usage.pop("error_signatures", None)
        usage.pop("handled_signatures", None)
    return out  # type: ignore[no-any-return]


def sdk_version() -> str:
    from importlib.metadata import version

    return version("opentelemetry-sdk")


def release(commit: str, into: Path) -> Path:
    r = subprocess.run(["git", "archive", commit, "otel_expansion"], cwd=ROOT, capture_output=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"the compatibility test runs releases from history: {commit} is not in this clone "
                    f"(a shallow clone? fetch the full history): {r.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=BytesIO(r.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


@pytest.mark.parametrize("name", list(RELEASES))
def test_an_older_release_counts_every_error_of_a_record_with_signatures(tmp_path: Path, name: str) -> None:
    """The new release replays the records with signatures; an older one with the same totals, no signature."""
    records = [cli_record(tmp_path / "home")]
    assert version_of(records[0]) == 1  # a CLI record stays where 0.2 reads it
    if name != "0.2":  # 0.2 never reads version 2 (a service's usage aggregate): it is not shown one
        records.append(service_record())
    new_points, _ = Replayer(resolve("sender", environ={}, home=str(tmp_path / "home"))).replay(
        [check(r) for r in records])  # type: ignore[arg-type]
    new = counts(new_points)
    assert any(dict(attrs).get("cli.error.signature") for _, attrs in new)
    old_tree = release(RELEASES[name], tmp_path / "release")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
    env["PYTHONPATH"] = str(old_tree)

    def replay_in_the_old_release(recs: list[dict[str, Any]], tag: str) -> dict[str, float]:
        path = tmp_path / f"records-{tag}.json"
        path.write_text(json.dumps(recs, default=list), encoding="utf-8")
        r = subprocess.run([sys.executable, "-c", CHILD, str(path), str(tmp_path / f"old-home-{tag}")], env=env,
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        result: dict[str, float] = json.loads(r.stdout)
        return result

    old = replay_in_the_old_release(records, "signed")
    # the signature changes nothing an older release counts: the same records without it count the same
    assert old == replay_in_the_old_release([unsigned(r) for r in records], "unsigned")
    if not old:  # the old release counts no error at all here, signed or not: it does not run on this
        # environment's OpenTelemetry (0.2 under the version matrix's lowest SDK, 1.30, which it declared
        # but was never tested on); the exact comparison needs an environment the old release works in
        pytest.skip(f"{name} records no error under opentelemetry-sdk {sdk_version()}, with or without signatures")
    assert old == without_signatures(new)
    assert sum(v for k, v in old.items() if k.startswith("cli.command.errors")) == 3 + (4 if name != "0.2" else 0)
