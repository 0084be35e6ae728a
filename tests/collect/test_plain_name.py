"""The service name's redaction is remembered as a proof in the home, never as a decision that outlives
what it was made from: a name redaction changes is redacted on every run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_expansion import collect as resource
from otel_expansion.config import Settings
from otel_expansion.config.paths import PLAIN_NAME_FILE
from tests.conftest import ROOT, clean_env


class Cleaner:
    """A stand-in for ``Recorder.clean`` that counts its calls: the test is whether it is asked."""

    def __init__(self, redact: str | None = None) -> None:
        self.calls = 0
        self.redact = redact

    def __call__(self, text: str) -> str:
        self.calls += 1
        return text.replace(self.redact, "<user>") if self.redact else text


def _settings(home: Path, name: str = "mycli", **values: object) -> Settings:
    return Settings(service_name=name, home=str(home), **values)


@pytest.fixture(autouse=True)
def _user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "alice")
    monkeypatch.delenv("USERNAME", raising=False)
    monkeypatch.delenv("LOGNAME", raising=False)


def test_a_plain_name_is_proved_once_then_not_cleaned_again(tmp_path: Path) -> None:
    """The first run cleans the name and keeps a proof (a digest, not the names it was made from); the
    next run with the same inputs takes the name as it is."""
    s, clean = _settings(tmp_path), Cleaner()
    assert resource.clean_service_name(s, clean) == "mycli" and clean.calls == 1
    proof = (tmp_path / PLAIN_NAME_FILE).read_bytes()
    assert len(proof) == 39 and b"alice" not in proof and os.uname().nodename.encode() not in proof
    assert resource.clean_service_name(s, clean) == "mycli" and clean.calls == 1


@pytest.mark.parametrize("change", ["name", "user", "home", "patterns", "allow", "salt", "rules"])
def test_any_input_of_the_decision_changed_decides_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          change: str) -> None:
    """A new name, user, home directory, redaction option or rule source is not covered by the proof."""
    s = _settings(tmp_path)
    resource.clean_service_name(s, Cleaner())
    if change == "name":
        s = _settings(tmp_path, "othercli")
    elif change == "user":
        monkeypatch.setenv("USER", "bob-the-builder")
    elif change == "home":
        monkeypatch.setenv("HOME", "/home/elsewhere")
    elif change == "patterns":
        s = _settings(tmp_path, redact_patterns=("my",))
    elif change == "allow":
        s = _settings(tmp_path, redact_allow=("mycli",))
    elif change == "salt":
        s = _settings(tmp_path, hash_salt="pepper")
    else:
        monkeypatch.setattr(resource, "_RULE_SOURCES", ("patterns.py", "redaction.py", "names.py"))
    clean = Cleaner()
    resource.clean_service_name(s, clean)
    assert clean.calls == 1


def test_a_name_redaction_changes_is_redacted_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name holding the user's name is never proved: each run cleans it, and no proof is left."""
    s = _settings(tmp_path, "alice-tools")
    for _ in range(2):
        clean = Cleaner(redact="alice")
        assert resource.clean_service_name(s, clean) == "<user>-tools" and clean.calls == 1
    assert not (tmp_path / PLAIN_NAME_FILE).exists()


def test_a_proof_of_another_input_set_is_not_taken(tmp_path: Path) -> None:
    """A proof file that does not match (another name's, damaged) makes the run clean the name."""
    (tmp_path / PLAIN_NAME_FILE).write_bytes(b"0000000000000000")
    clean = Cleaner()
    assert resource.clean_service_name(_settings(tmp_path), clean) == "mycli" and clean.calls == 1


def test_without_the_rule_sources_nothing_is_proved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the rule sources are not files (a frozen app, a zipapp) the name is cleaned on every run."""
    monkeypatch.setattr(resource, "_RULE_SOURCES", ("no-such-rules.py",))
    for _ in range(2):
        clean = Cleaner()
        resource.clean_service_name(_settings(tmp_path), clean)
        assert clean.calls == 1
    assert not (tmp_path / PLAIN_NAME_FILE).exists()


def test_the_real_recorder_redacts_the_users_name_in_the_service_name_on_every_run(tmp_path: Path) -> None:
    """End to end, with the real redaction: a service named after the user is recorded as ``<user>-...``
    on the first run and on the second (whose privacy module load the proof would otherwise spare)."""
    probe = ("import otel_expansion, sys\n"
             "t = otel_expansion.init('zelda-tools', '1.0')\n"
             "from otel_expansion._runtime import resource_of\n"
             "print(resource_of(t)['service.name'], 'otel_expansion.privacy.patterns' in sys.modules)\n")
    env = clean_env(tmp_path / "home", OTEL_EXPANSION_SEND="false", USER="zelda")
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60,
                             cwd=ROOT, check=True).stdout.split()
        assert out == ["<user>-tools", "True"]
    env["USER"] = "link"  # now the name is plain: proved on the first run, the second loads no privacy module
    outs = [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60,
                           cwd=ROOT, check=True).stdout.split() for _ in range(2)]
    assert outs == [["zelda-tools", "True"], ["zelda-tools", "False"]]
