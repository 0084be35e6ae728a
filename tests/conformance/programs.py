"""The real programs and what each scenario must record. Versions are pinned in pyproject's test extra.

click: black (one command), sqlite-utils (``rows`` delegates with ``ctx.invoke(query)``; a default
group). typer: hf from huggingface-hub (nested groups, catches errors and exits 1), pycln (one command).
argparse: http from httpie (``sys.exit(main())`` importing argparse late; catches argparse's usage
error and exits 1; Ctrl-C exits 130), twine (dispatches by hand to a second parser, ``prog="twine
check"``; returns True for exit 1), pygmentize and markdown-it (die by SIGINT on Ctrl-C).
Placeholders: {port} a server that accepts and never answers, {closed} a refused port, {wheel} a wheel.
"""

from __future__ import annotations

from dataclasses import dataclass

SCENARIOS = ("success", "usage", "failing", "unknown", "help", "sigint")


@dataclass(frozen=True)
class Case:
    tool: str
    scenario: str
    args: tuple[str, ...]
    name: str  # cli.command.name recorded
    exit: int  # process.exit.code recorded (130 for a death by SIGINT)
    error: str | None  # error.type recorded
    returncode: int  # what the parent sees: negative when killed by a signal
    stdin: bytes = b""
    interrupt: str | None = None  # "stdin": SIGINT while it waits for input; "server": while it waits on us


def _c(tool: str, scenario: str, args: str, name: str, exit: int, error: str | None, returncode: int | None = None,
       stdin: bytes = b"", interrupt: str | None = None) -> Case:
    return Case(tool, scenario, tuple(args.split()), name, exit, error,
                exit if returncode is None else returncode, stdin, interrupt)


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
)
