"""docopt's flags at `full`: read as docopt reads argv. Apart from tests/privacy (which the version matrix
runs, without docopt): the docopt integration's own programs."""

from __future__ import annotations

from pathlib import Path

from tests.privacy.test_framework_names import run

DOCOPT_SHORT = r'''
"""Usage: tool.py [options] <pos>

Options:
  -v --verbose
  -q
  -x
  -t TAG --tag=TAG
  -p PASS --password=PASS
"""
import docopt, otel_expansion
otel_expansion.init("doc")
docopt.docopt(__doc__)
'''


def test_docopt_flags_are_read_as_docopt_reads_them(tmp_path: Path) -> None:
    """docopt's own reading of argv names the flags: `-qtjane.doe` is -q and -t (never the value's
    letters), `--password -vqx` is the password (never flags), `--verb` is docopt's abbreviation of
    --verbose, and `-t -q` gives -t the value -q. Before, only the first letter of a cluster was kept and an
    option's value could be read as flags."""
    (cmd,) = run(tmp_path, DOCOPT_SHORT, "-qtjane.doe", "--password", "-vqx", "-x", "pos")
    assert cmd["args"] == ("-q", "-t", "--password", "-x"), cmd
    (cmd,) = run(tmp_path / "b", DOCOPT_SHORT, "--verb", "-t", "-q", "pos")
    assert cmd["args"] == ("--verbose", "-t"), cmd
    (cmd,) = run(tmp_path / "c", DOCOPT_SHORT, "-xvp", "-q", "--tag=-x", "pos")
    assert cmd["args"] == ("-x", "-v", "-p", "--tag"), cmd


DOCOPT_PATTERN = r'''
"""Usage:
  tool.py go [-v] [-q] [--tag=TAG] <pos>
  tool.py (-h | --help)

Options:
  -h --help
  -v
  -q
  --tag=TAG
"""
import docopt, otel_expansion
otel_expansion.init("doc")
docopt.docopt(__doc__)
'''


def test_docopt_flags_are_what_argv_gave_not_what_the_usage_names(tmp_path: Path) -> None:
    """docopt reads its usage pattern with the same functions as argv: the options the pattern names
    (`-h | --help`, `[-v] [-q] [--tag=TAG]`) are not flags the user gave. `--help`, which docopt answers
    by exiting before any result, is one."""
    (cmd,) = run(tmp_path, DOCOPT_PATTERN, "go", "-q", "pos")
    assert cmd["args"] == ("-q",), cmd
    (cmd,) = run(tmp_path / "b", DOCOPT_PATTERN, "go", "pos")
    assert not cmd.get("args"), cmd
    (cmd,) = run(tmp_path / "c", DOCOPT_PATTERN, "--help")
    assert cmd["args"] == ("--help",), cmd
