"""The real programs and what each scenario must record. Versions are pinned in pyproject's test extra.

click: black (one command), sqlite-utils (``rows`` delegates with ``ctx.invoke(query)``; a default
group). typer: hf from huggingface-hub (nested groups, catches errors and exits 1), pycln (one command).
argparse: http from httpie (``sys.exit(main())`` importing argparse late; catches argparse's usage
error and exits 1; Ctrl-C exits 130), twine (dispatches by hand to a second parser, ``prog="twine
check"``; returns True for exit 1), pygmentize and markdown-it (die by SIGINT on Ctrl-C).
Placeholders: {port} a server that accepts and never answers, {closed} a refused port, {wheel} a wheel.

Round 3 adds nine CLIs on the other ways of parsing arguments, pinned in the conformance venv
(tests/conformance/venv.py): coverage (optparse and its own command dispatch), rst2html from docutils
(optparse), tabulate (getopt), tqdm (plain sys.argv), pipreqs (docopt), fire (python-fire's own
``python -m fire`` CLI as a console script), invoke (its own parser), copier (plumbum.cli), and dotenv from
python-dotenv (click; ``dotenv run`` replaces its process with the command: the exec scenario).

What the new ones must record is what issue 22 demands: a program on no recognised framework is one
invocation named after its console script, with the exit status the shell saw and the error type (the
exception's, else the exit status); an exit that cannot be observed is ``unknown`` (exit None). Cases whose
record needs issue 22 part A (E22a's branch: the fallback record, native optparse/fire/docopt integrations,
exact SystemExit, recording before exec) carry ``pending="E22a"``: while "E22a" is in ``AWAITING`` their
output must already be identical, and a record that is not yet the expected one is an expected failure;
one that already matches fails the test, so the marker cannot outlive the feature. At the merge, empty
``AWAITING`` (and adjust names and error types to what the integrations chose).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

SCENARIOS = ("success", "usage", "failing", "unknown", "help", "sigint", "exec")

AWAITING: frozenset[str] = frozenset()
"""Work not merged yet: cases pending on it may not record what they must (see above). Empty it at the merge."""


@dataclass(frozen=True)
class Case:
    tool: str
    scenario: str
    args: tuple[str, ...]
    name: str  # cli.command.name recorded
    exit: int | None  # process.exit.code recorded (130 for a death by SIGINT); None: outcome unknown
    error: str | None  # error.type recorded
    returncode: int  # what the parent sees: negative when killed by a signal
    stdin: bytes = b""
    interrupt: str | None = None  # "stdin": SIGINT while it waits for input; "server": while it waits on us
    venv: str = "test"  # where the tool is installed: "test" (pyproject's test extra) or "conformance"
    pending: str | None = None  # the unmerged work its record needs (see AWAITING)


def _c(tool: str, scenario: str, args: str, name: str, exit: int | None, error: str | None,
       returncode: int | None = None, stdin: bytes = b"", interrupt: str | None = None, venv: str = "test",
       pending: str | None = None) -> Case:
    assert returncode is not None or exit is not None
    return Case(tool, scenario, tuple(args.split()), name, exit, error,
                exit if returncode is None else returncode, stdin, interrupt, venv, pending)


def _n(tool: str, scenario: str, args: str, name: str, exit: int | None, error: str | None,
       returncode: int | None = None, stdin: bytes = b"", interrupt: str | None = None,
       pending: str | None = "E22a") -> Case:
    """A round-3 CLI from the conformance venv; its record needs E22a's work unless ``pending`` says not."""
    return _c(tool, scenario, args, name, exit, error, returncode, stdin, interrupt, "conformance", pending)


CASES: tuple[Case, ...] = (
    # -- click -------------------------------------------------------------------------------------------
    _c("black", "success", "-q -", "black", 0, None, stdin=b"x=1\n"),
    _c("black", "usage", "--nope", "black", 2, "click.exceptions.NoSuchOption"),
    _c("black", "failing", "--check bad.py", "black", 1, "1"),
    _c("black", "unknown", "nosuch.py", "black", 2, "click.exceptions.BadParameter"),
    _c("black", "help", "--help", "black", 0, None),
    _c("black", "sigint", "-q -", "black", 1, "KeyboardInterrupt", interrupt="stdin"),
    _c("sqlite-utils", "success", "rows data.db t", "rows", 0, None),
    _c("sqlite-utils", "usage", "rows --nope", "rows", 2, "click.exceptions.NoSuchOption"),
    _c("sqlite-utils", "failing", "rows data.db nosuch", "rows", 1, "click.exceptions.ClickException"),
    _c("sqlite-utils", "unknown", "nope", "query", 2, "click.exceptions.MissingParameter"),
    _c("sqlite-utils", "help", "--help", "sqlite-utils", 0, None),
    _c("sqlite-utils", "sigint", "insert data.db t2 -", "insert", 1, "KeyboardInterrupt", interrupt="stdin"),
    # -- typer -------------------------------------------------------------------------------------------
    _c("hf", "success", "cache list", "cache list", 0, None),
    _c("hf", "usage", "cache list --bogus", "cache list", 2, "click.exceptions.NoSuchOption"),
    _c("hf", "failing", "auth whoami", "auth whoami", 1, "1"),
    _c("hf", "unknown", "nope", "hf", 2, "click.exceptions.NoSuchCommand"),
    _c("hf", "help", "cache --help", "cache", 0, None),
    _c("hf", "sigint", "download acme/model", "download", 1, "KeyboardInterrupt", interrupt="server"),
    _c("pycln", "success", "--check ok.py", "pycln", 0, None),
    _c("pycln", "usage", "--nope", "pycln", 2, "typer._click.exceptions.NoSuchOption"),
    _c("pycln", "failing", "--check bad.py", "pycln", 1, "1"),
    _c("pycln", "unknown", "nosuch.py", "pycln", 1, "1"),
    _c("pycln", "help", "--help", "pycln", 0, None),
    _c("pycln", "sigint", "-", "pycln", 130, "KeyboardInterrupt", interrupt="stdin"),
    # -- argparse ----------------------------------------------------------------------------------------
    _c("http", "success", "--offline --ignore-stdin GET example.org", "http", 0, None),
    _c("http", "usage", "--nope", "http", 1, "argparse.ArgumentError"),
    _c("http", "failing", "--ignore-stdin GET 127.0.0.1:{closed}", "http", 1, "1"),
    _c("http", "unknown", "--offline --ignore-stdin example.org x:=notjson", "http", 1, "argparse.ArgumentError"),
    _c("http", "help", "--help", "http", 0, None),
    _c("http", "sigint", "--ignore-stdin GET 127.0.0.1:{port}", "http", 130, "130", interrupt="server"),
    _c("twine", "success", "check {wheel}", "check", 0, None),
    _c("twine", "usage", "check --nope", "check", 2, "argparse.ArgumentError"),
    _c("twine", "failing", "check ok.py", "check", 1, "1"),
    _c("twine", "unknown", "nope", "twine", 2, "argparse.ArgumentError"),
    _c("twine", "help", "--help", "twine", 0, None),
    _c("twine", "sigint", "upload --repository-url http://127.0.0.1:{port}/ -u u -p p --disable-progress-bar {wheel}",
       "upload", 130, "KeyboardInterrupt", returncode=-2, interrupt="server"),
    _c("pygmentize", "success", "-l python -f html ok.py", "pygmentize", 0, None),
    _c("pygmentize", "usage", "--nope", "pygmentize", 2, "argparse.ArgumentError"),
    _c("pygmentize", "failing", "-l nosuchlexer ok.py", "pygmentize", 1, "1"),
    _c("pygmentize", "unknown", "nosuch.py", "pygmentize", 1, "1"),
    _c("pygmentize", "help", "-h", "pygmentize", 0, None),
    _c("pygmentize", "sigint", "-l python", "pygmentize", 130, "KeyboardInterrupt", returncode=-2, interrupt="stdin"),
    _c("markdown-it", "success", "README.md", "markdown-it", 0, None),
    _c("markdown-it", "usage", "--nope", "markdown-it", 2, "argparse.ArgumentError"),
    _c("markdown-it", "failing", "nosuch.md", "markdown-it", 1, "FileNotFoundError"),
    _c("markdown-it", "unknown", "nope", "markdown-it", 1, "FileNotFoundError"),
    _c("markdown-it", "help", "--help", "markdown-it", 0, None),
    _c("markdown-it", "sigint", "--stdin", "markdown-it", 130, "KeyboardInterrupt", returncode=-2,
       interrupt="stdin"),
    # -- optparse ----------------------------------------------------------------------------------------
    _n("coverage", "success", "help", "coverage", 0, None),
    _n("coverage", "usage", "report --nope", "coverage", 1, "1"),
    _n("coverage", "failing", "report --data-file=nodata", "coverage", 1, "1"),
    _n("coverage", "unknown", "nope", "coverage", 1, "1"),
    _n("coverage", "help", "--help", "coverage", 0, None),
    _n("coverage", "sigint", "run --data-file=cov-sigint readall.py", "coverage", 130, "KeyboardInterrupt",
       returncode=-2, interrupt="stdin"),
    _n("rst2html", "success", "ok.rst", "rst2html", 0, None),
    _n("rst2html", "usage", "--nope", "rst2html", 2, "optparse.OptParseError"),
    _n("rst2html", "failing", "nosuch.rst", "rst2html", 1, "1"),
    _n("rst2html", "unknown", "ok.rst out.html extra", "rst2html", 2, "optparse.OptParseError"),
    _n("rst2html", "help", "--help", "rst2html", 0, None),
    _n("rst2html", "sigint", "", "rst2html", 130, "KeyboardInterrupt", returncode=-2, interrupt="stdin"),
    # -- getopt and plain sys.argv -----------------------------------------------------------------------
    _n("tabulate", "success", "t.txt", "tabulate", 0, None),
    _n("tabulate", "usage", "--nope", "tabulate", 2, "getopt.GetoptError"),
    _n("tabulate", "failing", "nosuch.txt", "tabulate", 1, "FileNotFoundError"),
    _n("tabulate", "unknown", "-f nosuchformat t.txt", "tabulate", 3, "3"),
    _n("tabulate", "help", "-h", "tabulate", 0, None),
    _n("tabulate", "sigint", "", "tabulate", 130, "KeyboardInterrupt", returncode=-2, interrupt="stdin"),
    _n("tqdm", "success", "--disable", "tqdm", 0, None, stdin=b"a\nb\n"),
    _n("tqdm", "usage", "--nope", "tqdm", 1, "tqdm.std.TqdmKeyError"),
    _n("tqdm", "failing", "--total=x", "tqdm", 1, "tqdm.std.TqdmTypeError"),
    _n("tqdm", "unknown", "nope --disable", "tqdm", 0, None, stdin=b"a\n"),
    _n("tqdm", "help", "--help", "tqdm", 0, None),
    # -- docopt ------------------------------------------------------------------------------------------
    _n("pipreqs", "success", "--print --use-local proj", "pipreqs", 0, None),
    _n("pipreqs", "usage", "--nope", "pipreqs", 1, "docopt.DocoptExit"),
    _n("pipreqs", "failing", "--use-local --savepath nodir/req.txt proj", "pipreqs", 1, "FileNotFoundError"),
    _n("pipreqs", "unknown", "nope extra", "pipreqs", 1, "docopt.DocoptExit"),
    _n("pipreqs", "help", "--help", "pipreqs", 0, None),
    # -- python-fire -------------------------------------------------------------------------------------
    _n("fire", "success", "math sqrt 4", "sqrt", 0, None),  # the member the words reached
    _n("fire", "usage", "math sqrt", "sqrt", 2, "fire.core.FireError"),
    _n("fire", "failing", "math sqrt -1", "sqrt", 1, "ValueError"),
    _n("fire", "unknown", "math nosuch", "fire", 2, "fire.core.FireError"),
    _n("fire", "help", "math -- --help", "fire", 0, None, pending=None),
    _n("fire", "sigint", "waits.py ask", "ask", 130, "KeyboardInterrupt", returncode=-2, interrupt="stdin",
       pending=None),
    # -- invoke and plumbum ------------------------------------------------------------------------------
    _n("invoke", "success", "hello", "invoke", 0, None),
    _n("invoke", "usage", "--nope", "invoke", 1, "invoke.exceptions.ParseError"),
    # invoke ends a failing task with its own `sys.exit(3)` deep in the library: exact where the interpreter
    # lets us observe a raised SystemExit (3.12+), honestly `unknown` before (README: "What a run records")
    _n("invoke", "failing", "fail", "invoke", *((3, "3") if sys.version_info >= (3, 12) else (None, None)),
       returncode=3),
    _n("invoke", "unknown", "nosuch", "invoke", 1, "invoke.exceptions.ParseError"),
    _n("invoke", "help", "--help", "invoke", 0, None),
    _n("invoke", "sigint", "ask", "invoke", 1, "KeyboardInterrupt", interrupt="stdin"),
    _n("copier", "success", "copy --pretend --quiet tpl dst", "copier", 0, None),
    _n("copier", "usage", "--nope", "copier", 2, "2"),
    _n("copier", "failing", "copy --quiet nosuch dst", "copier", 1, "ValueError"),
    _n("copier", "unknown", "nope", "copier", 1, "1"),
    _n("copier", "help", "--help", "copier", 0, None),
    # -- click, with an exec -----------------------------------------------------------------------------
    _n("dotenv", "success", "list", "list", 0, None, pending=None),
    _n("dotenv", "usage", "--nope", "dotenv", 2, "click.exceptions.NoSuchOption", pending=None),
    _n("dotenv", "failing", "-f nosuch.env list", "list", 2, "2", pending=None),
    _n("dotenv", "unknown", "nope", "dotenv", 2, "click.exceptions.NoSuchCommand", pending=None),
    _n("dotenv", "help", "--help", "dotenv", 0, None, pending=None),
    _n("dotenv", "exec", "run echo hi", "run", None, None, returncode=0),
)
