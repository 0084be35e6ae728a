"""Keep only the program's own text of a free-text value; everything else becomes a typed placeholder.

Patterns alone cannot keep personal data out of free text (a name, a street, a passport number look
like any other words). What can be proved is provenance: the fixed parts of ``f"no account {user!r}
in {region}"`` are string constants of the code object that built it. So a message is rebuilt from
the string constants of the code involved (the frames of an exception's traceback, its class's
``__init__``/``__str__``, the caller of ``feature()``), and only of code compiled from the program's own
files (an imported module's file or the main script, see ``vocabulary.own_code``): code compiled from a
string, or ``exec`` of a ``settings.py``, is the user's text, not the program's. Each run of text found
among them is kept, each
run that is not (what was interpolated) is replaced by a placeholder the redaction rules only label
(``<email>``, ``<ip>``, ``<number>``, ``<value>``). Used at ``full`` level only, off the common path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import CodeType, FrameType

from otel_expansion.privacy.vocabulary import own_code

__all__ = ["VALUE", "Constants", "caller_constants", "exception_constants", "literal_in_caller", "own_text"]

VALUE = "<value>"
NUMBER = "<number>"
MAX_CODES = 64  # code objects looked at per exception (a deep traceback keeps its innermost frames)
_CACHE_MAX = 2048
# Caches keyed by id(code), each entry holding its code object: a code object's own hash is computed
# afresh on every lookup from all its constants, nested functions included (~20 us for a module of 300
# functions), while id() is free. The entry keeps its code alive, so the id cannot be reused meanwhile.
_code_cache: dict[int, tuple[CodeType, tuple[str, ...]]] = {}
_QUOTES = "'\"()[]<>,;"


class Constants:
    """String constants indexed by first character, longest first, for a left-to-right match."""

    __slots__ = ("by_first",)

    def __init__(self, strings: Iterable[str]) -> None:
        by_first: dict[str, list[str]] = {}
        for s in set(strings):
            if s and len(s) <= 4096:
                by_first.setdefault(s[0], []).append(s)
        for items in by_first.values():
            items.sort(key=len, reverse=True)
        self.by_first = by_first

    def match(self, text: str, i: int) -> int:
        """Length of the longest acceptable constant at ``text[i:]`` (0: none)."""
        items = self.by_first.get(text[i])
        if not items:
            return 0
        n = len(text)
        for c in items:
            size = len(c)
            if size > n - i or not text.startswith(c, i):
                continue
            if size == 1 and c.isalnum():
                continue
            if size < 4 and any(ch.isalnum() for ch in c):
                # a short word counts only as a whole word, never as a slice of an interpolated value
                before = text[i - 1] if i else " "
                after = text[i + size] if i + size < n else " "
                if (before.isalnum() and c[0].isalnum()) or (after.isalnum() and c[-1].isalnum()):
                    continue
            return size
        return 0


def _pieces(const: str) -> list[str]:
    """A constant and, for a %- or {}-format template, its literal pieces (``"user %s"`` -> ``"user "``)."""
    out = [const]
    if "%" in const or "{" in const:
        piece: list[str] = []
        i, n = 0, len(const)
        while i < n:
            ch = const[i]
            if ch == "%" and i + 1 < n:
                if const[i + 1] == "%":
                    piece.append("%")
                    i += 2
                    continue
                j = i + 1
                while j < n and not const[j].isalpha():
                    j += 1
                out.append("".join(piece))
                piece = []
                i = j + 1
                continue
            if ch == "{":
                if i + 1 < n and const[i + 1] == "{":
                    piece.append("{")
                    i += 2
                    continue
                j = const.find("}", i)
                if j < 0:
                    piece.append(ch)
                    i += 1
                    continue
                out.append("".join(piece))
                piece = []
                i = j + 1
                continue
            piece.append(ch)
            i += 1
        out.append("".join(piece))
    return [p for p in out if p]


def _code_strings(code: CodeType, depth: int = 0) -> tuple[str, ...]:
    hit = _code_cache.get(id(code))
    if hit is not None and hit[0] is code:
        return hit[1]
    strings: list[str] = []
    for const in code.co_consts:
        t = type(const)
        if t is str:
            strings.extend(_pieces(const))
        elif t is tuple or t is frozenset:
            strings.extend(p for c in const if type(c) is str for p in _pieces(c))
        elif depth < 2 and hasattr(const, "co_consts"):
            strings.extend(_code_strings(const, depth + 1))
    out = tuple(strings)
    if len(_code_cache) >= _CACHE_MAX:
        _code_cache.clear()
    _code_cache[id(code)] = (code, out)
    return out


def exception_constants(exc: BaseException) -> Constants:
    """String constants of the code that raised ``exc``: its traceback's frames, its class's methods."""
    codes: list[CodeType] = []
    tb = exc.__traceback__
    while tb is not None:
        codes.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    codes = codes[-MAX_CODES:]
    for cls in type(exc).__mro__[:4]:
        for attr in ("__init__", "__str__"):
            fn = cls.__dict__.get(attr)
            code = getattr(fn, "__code__", None)
            if code is not None:
                codes.append(code)
    strings: list[str] = []
    for code in codes:
        if own_code(code):
            strings.extend(_code_strings(code))
    return Constants(strings)


def caller_constants(frame: FrameType | None, skip_prefix: str = "otel_expansion.") -> Constants:
    """String constants of the first frame outside this package (the app's call to ``feature()``)."""
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(skip_prefix):
        frame = frame.f_back
    return Constants(_code_strings(frame.f_code) if frame is not None and own_code(frame.f_code) else ())


_literal_sets: dict[int, tuple[CodeType, frozenset[str]]] = {}  # id(code) -> (code, its constants)


def literal_in_caller(text: str, frame: FrameType | None, skip_prefix: str = "otel_expansion.") -> bool:
    """Whether ``text`` is a string constant of the first calling frame outside this package: the app
    wrote ``command("deploy")``, rather than passing on something it computed or was given.

    Runs on every ``command()`` and ``feature()``: one frame (or two) looked at, one dict lookup."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module if type(module) is str else str(module)).startswith(skip_prefix):
            break
        frame = frame.f_back
    if frame is None:
        return False
    code = frame.f_code
    entry = _literal_sets.get(id(code))
    if entry is None or entry[0] is not code:
        if len(_literal_sets) >= _CACHE_MAX:
            _literal_sets.clear()
        # exec'd text (a settings.py, a string) is not the program's code: no literal of it counts. Decided
        # once per code object: a running code's module is already imported, so the answer cannot change
        entry = _literal_sets[id(code)] = (code, frozenset(
            s for c in code.co_consts for s in ((c,) if type(c) is str else c if type(c) in (tuple, frozenset) else ())
            if type(s) is str) if own_code(code, module) else frozenset())  # ("sync", "deploy"): one tuple constant
    return text in entry[1]


def own_text(text: str, constants: Constants, label: Callable[[str], str] | None = None) -> str:
    """``text`` with every run not found among ``constants`` replaced by ``label(run)`` (a placeholder)."""
    out: list[str] = []
    gap_start = -1
    i, n = 0, len(text)
    while i < n:
        size = constants.match(text, i)
        if size:
            if gap_start >= 0:
                out.append(_placeholder(text[gap_start:i], label))
                gap_start = -1
            out.append(text[i:i + size])
            i += size
        else:
            if gap_start < 0:
                gap_start = i
            i += 1
    if gap_start >= 0:
        out.append(_placeholder(text[gap_start:], label))
    return "".join(out)


def _placeholder(run: str, label: Callable[[str], str] | None) -> str:
    """A placeholder for one interpolated run: whitespace around it is kept, its content never is."""
    core = run.strip()
    if not core or (len(core) <= 2 and all(c in _QUOTES for c in core)):
        return run  # whitespace, or the quotes of a repr: no content of its own
    core = core.strip("'\"")
    if not core:
        return run
    start = run.index(core)
    lead, trail = run[:start], run[start + len(core):]
    kind = NUMBER if core.replace(".", "", 1).lstrip("-").isdigit() else (label(core) if label else VALUE)
    return lead + kind + trail


def kind_of(redact: Callable[[str], str]) -> Callable[[str], str]:
    """A labeller from a redactor: the placeholder a rule puts on the whole run, else ``<value>``."""

    def label(run: str) -> str:
        try:
            out = redact(run)
        except Exception:
            return VALUE
        if out != run and out.startswith("<") and out.endswith(">") and out.count("<") == 1:
            return out
        return VALUE

    return label
