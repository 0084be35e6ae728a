"""Keep only the program's own text of a free-text value; everything else becomes a typed placeholder.

Patterns alone cannot keep personal data out of free text (a name, a street, a passport number look
like any other words). What can be proved is provenance: ``f"no account {user!r} in {region}"`` is a
template the code wrote, fixed pieces with a value between them. So a message is matched, whole, against
the templates of the code involved (the frames of an exception's traceback, its class's
``__init__``/``__str__``, the caller of ``feature()``), and only of code the program ships (its module
files or main script, see ``vocabulary.own_code``): code compiled from a string, ``exec`` of a
``settings.py``, or a task file the program imported from the user's folder is the user's text, not the
program's. A template is a string constant (the whole message), a %- or {}-format constant (a gap per
field), or a string the bytecode builds from constant pieces and values (an f-string, a ``+``). Of the
template that matches the whole message with the most fixed text, the pieces are kept and each gap (what
was interpolated) becomes a placeholder the redaction rules only label (``<email>``, ``<number>``,
``<value>``), whatever it contains: a value that happens to equal some other constant of the program
stays a value. No template matching: the whole message is a placeholder. Used at ``full`` level only,
off the common path.
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
_code_cache: dict[int, tuple[CodeType, tuple[Template, ...]]] = {}
_QUOTES = "'\"()[]<>,;"

Template = tuple[str, ...]
"""Fixed pieces with a gap between each two: ``("user ", " not found")`` is ``user {} not found``; a
template of one piece is a whole message; an empty first or last piece puts a gap at that end."""


class Constants:
    """The templates of the code involved, matched against a whole message (see the module docstring)."""

    __slots__ = ("templates",)

    def __init__(self, strings: Iterable[str] = (), templates: Iterable[Template] = ()) -> None:
        found: dict[Template, None] = {}
        for s in strings:
            if s and len(s) <= 4096:
                found[_template(s)] = None
        for t in templates:
            if any(t) and sum(map(len, t)) <= 4096:
                found[t] = None
        self.templates = tuple(found)

    def match(self, text: str) -> tuple[Template, list[tuple[int, int]]] | None:
        """The template matching all of ``text`` with the most fixed text, and its gaps' spans."""
        best: tuple[Template, list[tuple[int, int]]] | None = None
        best_size = -1
        for t in self.templates:
            gaps = _spans(t, text)
            if gaps is not None:
                size = sum(map(len, t))
                if size > best_size:
                    best, best_size = (t, gaps), size
        return best


def _spans(t: Template, text: str) -> list[tuple[int, int]] | None:
    """The gaps' (start, end) when ``text`` is ``t`` with something in each gap, else None. Each middle
    piece is found leftmost: with only gaps between fixed pieces, that finds a match when there is one."""
    first, last = t[0], t[-1]
    if len(t) == 1:
        return [] if text == first else None
    n = len(text)
    if n < len(first) + len(last) or not text.startswith(first) or not text.endswith(last):
        return None
    pos, limit = len(first), n - len(last)
    gaps: list[tuple[int, int]] = []
    for piece in t[1:-1]:
        i = text.find(piece, pos, limit) if piece else pos
        if i < 0:
            return None
        gaps.append((pos, i))
        pos = i + len(piece)
    gaps.append((pos, limit))
    return gaps


def _template(const: str) -> Template:
    """A constant as a template: a %- or {}-format constant has a gap per field (``"user %s"`` ->
    ``("user ", "")``); any other constant is a whole message."""
    if "%" not in const and "{" not in const:
        return (const,)
    out: list[str] = []
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
        if ch == "}" and i + 1 < n and const[i + 1] == "}":
            piece.append("}")
            i += 2
            continue
        piece.append(ch)
        i += 1
    out.append("".join(piece))
    return tuple(out) if len(out) > 1 else (const,)


_NO_PUSH = ("STORE_", "DELETE_", "POP_JUMP", "JUMP", "NOP", "RESUME", "KW_NAMES", "RETURN", "POP_TOP",
            "EXTENDED_ARG", "CACHE", "PRECALL", "SETUP_", "POP_BLOCK", "POP_EXCEPT", "RAISE", "RERAISE",
            "PRINT_EXPR", "IMPORT_STAR", "COPY_FREE_VARS", "MAKE_CELL", "END_FOR", "END_SEND")
"""Instructions that leave nothing new on top of the stack (see _built): the item below stays what it was."""


def _built(code: CodeType) -> list[Template]:
    """Templates of the strings ``code`` builds from pieces: an f-string (``BUILD_STRING``) or ``+`` of a
    constant and a value. A walk of the bytecode keeping, per stack slot, whether its item is a string
    constant, a template built so far, or a value; a slot it cannot follow (a branch inside an f-string)
    only ever turns a constant into a value, so a template keeps fewer pieces, never a value's text."""
    import dis

    out: list[Template] = []
    stack: list[object] = []  # per slot: a str (a constant), a Template (built), or None (a value)
    for ins in dis.get_instructions(code):
        name = ins.opname
        try:
            effect = dis.stack_effect(ins.opcode, ins.arg, jump=False) if ins.opcode >= dis.HAVE_ARGUMENT \
                else dis.stack_effect(ins.opcode)
        except ValueError:
            stack = []
            continue
        if name == "BUILD_STRING" or (name in ("BINARY_OP", "BINARY_ADD") and ins.argrepr in ("+", "")):
            count = ins.arg if name == "BUILD_STRING" else 2
            if count is None or count > len(stack) or (name == "BINARY_OP" and ins.argrepr != "+"):
                stack = []
                continue
            parts = stack[len(stack) - count:]
            del stack[len(stack) - count:]
            pieces = [""]
            for part in parts:
                if type(part) is str:
                    pieces[-1] += part
                elif type(part) is tuple:
                    pieces[-1] += part[0]
                    pieces.extend(part[1:])
                else:
                    pieces.append("")  # a value: a gap
            built: Template = tuple(pieces)
            if len(built) > 1:
                out.append(built)
                stack.append(built)
            else:
                stack.append(built[0])  # constants only
            continue
        depth = len(stack) + effect
        if depth < 0:
            stack = []
            continue
        if name.startswith("LOAD_CONST") and type(ins.argval) is str:
            stack.append(ins.argval)
            continue
        pushes = not name.startswith(_NO_PUSH)
        if depth > len(stack):
            stack.extend([None] * (depth - len(stack)))
        else:
            del stack[depth:]
        if pushes and stack:
            stack[-1] = None
    return out


def _code_templates(code: CodeType, depth: int = 0) -> tuple[Template, ...]:
    hit = _code_cache.get(id(code))
    if hit is not None and hit[0] is code:
        return hit[1]
    found: list[Template] = []
    for const in code.co_consts:
        t = type(const)
        if t is str:
            if const:
                found.append(_template(const))
        elif t is tuple or t is frozenset:
            found.extend(_template(c) for c in const if type(c) is str and c)
        elif depth < 2 and hasattr(const, "co_consts"):
            found.extend(_code_templates(const, depth + 1))
    try:
        built = _built(code)
    except Exception:  # a bytecode this walk does not know: the constants' templates only
        built = []
    found.extend(built)
    out = tuple(found)
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
    templates: list[Template] = []
    for code in codes:
        if own_code(code):
            templates.extend(_code_templates(code))
    return Constants(templates=templates)


def caller_constants(frame: FrameType | None, skip_prefix: str = "otel_expansion.") -> Constants:
    """String constants of the first frame outside this package (the app's call to ``feature()``)."""
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(skip_prefix):
        frame = frame.f_back
    return Constants(templates=_code_templates(frame.f_code) if frame is not None and own_code(frame.f_code) else ())


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
    """``text`` as the best template of ``constants`` matching all of it, each gap replaced by
    ``label(gap)`` (a placeholder); the whole of ``text`` a placeholder when none matches."""
    hit = constants.match(text)
    if hit is None:
        return _placeholder(text, label)
    template, gaps = hit
    out: list[str] = [template[0]]
    for (start, end), piece in zip(gaps, template[1:], strict=True):
        out.append(_placeholder(text[start:end], label))
        out.append(piece)
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
