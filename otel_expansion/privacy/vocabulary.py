"""The closed vocabulary: the only strings that may leave this process as names.

The rule, in one sentence: a string leaves only if it belongs to a closed vocabulary fixed by the
program's code or declarations, or is one of the library's own signal values; everything else becomes
a typed placeholder and is counted. Heuristics (patterns, shapes) may add redaction, never admit a value.

What counts as *fixed by the program's code* is decided by construction, never by the look of a value:

- ``in_code(text, ...)``: ``text`` is a string constant (or a ``def``'s name) of code compiled from a
  module file the interpreter imported, or from the main script: the code on the stack, the functions
  given, the modules given. Code compiled from a string or from any other file (``exec`` of a
  ``settings.py``) is not the program's own and admits nothing.
- ``published(text)``: a name an installed distribution publishes as an entry point (a plugin's command
  name is public).
- ``admit(text, declared=..., literal=...)``: the one decision every integration calls: a declared or
  literal name is kept whatever its shape (printable, at most ``MAX_LITERAL`` characters); anything
  else is ``DYNAMIC``.
- ``command_word(...)``: ``admit`` for one word of a command path, proving literalness on the way;
  the function click, typer, argparse (and later optparse, fire, docopt) integrations call.
- ``executable_name``, ``error_type``: the same rule for ``process.executable.name`` and ``error.type``.

Pure standard library, nothing imported at module load but ``os`` and ``sys``; every proof is cached.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import CodeType, FrameType

__all__ = [
    "DYNAMIC",
    "MAX_LITERAL",
    "RULE",
    "RULES",
    "admit",
    "command_path",
    "command_word",
    "error_type",
    "executable_name",
    "frame_label",
    "in_code",
    "own_code",
    "printable",
    "published",
    "signature",
]

RULE = ("A string leaves only if it belongs to a closed vocabulary fixed by the program's code or "
        "declarations, or is one of the library's own signal values; everything else becomes a typed "
        "placeholder and is counted. Heuristics (patterns, shapes) may add redaction, never admit a value.")
"""The privacy rule, as README.md and TELEMETRY.md state it (generated from here)."""

RULES: tuple[tuple[str, str, str], ...] = (
    ("command names (`cli.command.name`, span names)", "basic",
     "written literally in the program's own code (a decorator's or `add_parser`'s literal, a `def` name, a "
     "literal list, a word of a short literal such as an alias table of names), listed in "
     "`init(commands=...)`, or published by an installed distribution's entry points; "
     "kept whatever their shape (printable, at most 128 characters); else `<dynamic>`, counted"),
    ("`error.type`", "basic",
     "a builtin exception, or a class made by a class statement of an importable module (module and qualified "
     "name resolve to it); a class made at run time is reported as its nearest such base"),
    ("`cli.error.signature` (frames of a failure's traceback)", "basic",
     "`module:function` of frames whose code is the program's (compiled from its main script, a module of "
     "the standard library, an installed distribution, its own packages, or imported from where its code was "
     "when `init()` ran; not a task file or plugin it imports at run time from the user's folder), the module "
     "being the name the import system gives that file and the function a `def`/`class` name of it (else "
     "`<dynamic>`); at basic the program's own frames only (main script, modules outside `site-packages` and "
     "the standard library, its entry point's packages); from enhanced also installed "
     "third-party modules, and the standard library as its bare top-level module (`json`); never the "
     "library's or a dispatch framework's frames; `exec`/`eval` code is `<dynamic>`; no line, path or value; "
     "outermost first, repeats collapsed, at most 8 frames (outermost 2, `…`, innermost 6)"),
    ("`process.executable.name`", "enhanced",
     "the installed console script's name (published by an entry point), else the service name; never a "
     "script file's name"),
    ("`service.name`", "basic",
     "the name the app passes to `init()`; the user's `OTEL_SERVICE_NAME` only when the app opts in "
     "(`init(service_name_env=True)`; `opentelemetry-instrument`) and identifier-shaped"),
    ("feature names", "basic",
     "declared (`declare_features`, `init(features=...)`) or written literally in the calling code; else "
     "`<dynamic>`, counted"),
    ("feature attributes", "full",
     "only attributes a declared feature declares (name, type, level), numbers included; text keeps only the "
     "program's own literal text; undeclared ones are dropped and counted"),
    ("free text (exception messages)", "full",
     "a message matched whole against a template of the program's own code (a constant, a `%`/`{}` format, an "
     "f-string or `+` of pieces; code compiled from another file, a string, or a file imported from the "
     "user's folder has none): its fixed pieces kept, each interpolated value `<value>`, `<email>`... "
     "whatever it contains; no template matching: the whole message is a placeholder"),
    ("`OTEL_RESOURCE_ATTRIBUTES` values", "basic",
     "only keys the app allow-lists (`init(resource_keys=...)`), each value in the vocabulary the app gives "
     "for the key, or identifier-shaped; else `<dynamic>`"),
    ("other instrumentations' spans and metrics", "basic",
     "only the instruments and attributes listed below for the level, each value passing its rule; never a "
     "URL, path, query, header or user value"),
)
"""What may leave, by kind: (what, from level, the rule). Generated into README.md and TELEMETRY.md."""


def rules_markdown() -> str:
    """The rule and the table of what each kind of string may be (README.md and TELEMETRY.md)."""
    from otel_expansion.privacy import foreign

    lines = [f"**{RULE}**", "", "| what | from level | what may leave |", "|---|---|---|"]
    lines += [f"| {what} | {level} | {rule} |" for what, level, rule in RULES]
    lines += ["", "Other instrumentations (under `opentelemetry-instrument`): instruments "
              + ", ".join(f"`{name}` ({level})" for name, level in foreign.METRICS.items())
              + "; attributes of their spans and metrics:", "",
              "| attribute | from level | values |", "|---|---|---|"]
    lines += [f"| `{key}` | {spec[0]} | {spec[2]} |" for key, spec in foreign.ATTRIBUTES.items()]
    return "\n".join(lines) + "\n"


DYNAMIC = "<dynamic>"
"""A name that exists only at run time: a plugin found on disk, a typed word, a computed string."""
MAX_LITERAL = 128
FRAMEWORK_MODULES = ("otel_expansion", "click", "typer", "argparse", "optparse", "fire", "docopt", "runpy",
                     "importlib", "contextlib", "functools")
"""Top-level packages whose frames and files are skipped when the program's code is searched: their
literals (``help``, ``--version``) are theirs, not the program's."""

_CACHE_MAX = 4096
_literals: dict[int, tuple[CodeType, frozenset[str]]] = {}  # id(code) -> (code, its string constants)
_modules: dict[str, frozenset[str]] = {}  # module name -> literals of its whole file
_files: list[object] = [0, frozenset()]  # [len(sys.modules) when built, files of imported modules]
_entry_points: list[frozenset[str]] = []
_error_types: dict[type, str] = {}
_stand_ins: dict[type, str] = {}  # an integration's own exception class -> the framework class it reports


def printable(text: object) -> bool:
    """The only shape rule a literal name meets: a printable string of at most ``MAX_LITERAL`` characters."""
    return type(text) is str and 0 < len(text) <= MAX_LITERAL and text.isprintable()


def admit(text: object, declared: frozenset[str] | None = None, literal: bool = False) -> str:
    """``text`` when the program declared it or wrote it literally (and it is printable), else ``DYNAMIC``."""
    if not printable(text):
        return DYNAMIC
    if literal or (declared is not None and text in declared):
        return text  # type: ignore[return-value]  # printable() proved it is a str
    return DYNAMIC


def _module_files() -> frozenset[str]:
    """Files of every imported module, and the main script: code compiled from a file, not a string."""
    modules = sys.modules
    if _files[0] == len(modules):
        return _files[1]  # type: ignore[return-value]
    # once a module's file, always: at exit the main module may be gone from sys.modules (or lose its
    # __file__) while the frames of a traceback still point into it; the main script is also the one
    # ``init()`` saw (``remember_main``), so a first look at exit still finds it
    files: set[str] = set(_files[1] or ())  # type: ignore[call-overload]
    # a PyInstaller app runs its modules from its bundle (``sys._MEIPASS``) with code whose file names were
    # made relative to it when it was built: those are the same files
    bundle = getattr(sys, "_MEIPASS", None) if getattr(sys, "frozen", False) else None
    prefix = os.path.join(bundle, "") if type(bundle) is str and bundle else None
    names = _file_modules
    for name, module in list(modules.items()):
        f = getattr(module, "__file__", None)
        if type(f) is str:
            files.add(f)
            if type(name) is str:
                names.setdefault(f, name)
            if prefix is not None and f.startswith(prefix):
                files.add(f[len(prefix):])
            if f.endswith((".pyc", ".pyo")):  # sourceless or legacy layout
                files.add(f[:-1])
                if type(name) is str:
                    names.setdefault(f[:-1], name)
    main = _main_seen()[0]
    if main is not None:
        files.add(main)
    _files[0], _files[1] = len(modules), frozenset(files)
    return _files[1]  # type: ignore[return-value]


_main: list[tuple[str | None, str | None, frozenset[str]]] = []  # main file, ``-m`` module, code roots
_file_modules: dict[str, str] = {}  # an imported module's file -> its module name (to find its import root)
_program_files: dict[str, bool] = {}  # file -> whether it is the program's own code (see _program_file)
EXTRA_ROOTS: list[str] = []
"""Directories whose modules count as the program's own code besides those ``_program_file`` derives (the
test suite puts its own tree here: its in-process tests play the program's code under pytest's main)."""


def remember_main(file: object, spec_name: object, path: tuple[object, ...] = (), cwd: str = "") -> None:
    """The main script's file, ``-m`` module, ``sys.path`` and working directory as ``init()`` saw them (by
    the exit, ``__main__`` may be gone from ``sys.modules`` while a traceback still runs through it)."""
    if _main:
        return
    main = os.path.abspath(file) if type(file) is str else None
    here = os.path.dirname(main) if main is not None and spec_name is None else None
    roots: set[str] = set()
    for entry in path:
        if type(entry) is str:
            root = os.path.abspath(os.path.join(cwd, entry)) if cwd else os.path.abspath(entry)
            # the working directory is where the user's files are (``python -m``/``-c`` put it first):
            # its modules are the program's only when the main script lives there
            if root != cwd or root == here:
                roots.add(root)
    if here is not None:
        roots.add(here)
    _main.append((main, spec_name if type(spec_name) is str else None, frozenset(roots)))


def _main_seen() -> tuple[str | None, str | None, frozenset[str]]:
    """(main script file, ``-m`` module, the import roots of the program's code) of this process, as
    ``init()`` saw them, else as they are now."""
    if not _main:
        from otel_expansion.config import MAIN

        if MAIN:
            remember_main(*MAIN[0])
        else:  # no init(), or one that ran before the main script was loaded (opentelemetry-instrument)
            main = sys.modules.get("__main__")
            try:
                cwd = os.getcwd()
            except OSError:
                cwd = ""
            remember_main(getattr(main, "__file__", None), getattr(getattr(main, "__spec__", None), "name", None),
                          tuple(sys.path), cwd)
    return _main[0]


def _program_file(filename: str) -> bool:
    """Whether an imported module's file is code the program ships or runs on (``own_code``), by where it
    comes from: the standard library, an installed distribution (``site-packages``), a frozen app's
    bundle, the main script, a module of the program's own packages (its ``-m`` package, its entry point's
    targets), or a module imported from where the program's code was when ``init()`` ran: the main
    script's directory and the other ``sys.path`` entries of that moment (``PYTHONPATH``, a ``.pth``),
    never the working directory unless the main script lives there. Not a file the program imported from
    anywhere else at run time: a task file, a plugin or a conftest read from the current directory or a
    user's folder is the user's text, and its names and literals are the user's. Remembered per file."""
    hit = _program_files.get(filename)
    if hit is not None:
        return hit
    answer = _decide_program_file(filename)
    if len(_program_files) >= _CACHE_MAX:
        _program_files.clear()
    _program_files[filename] = answer
    return answer


def _decide_program_file(filename: str) -> bool:
    if filename.startswith("<frozen ") or getattr(sys, "frozen", False):
        return True  # a frozen standard module, or a frozen app's bundle: all of it shipped as the program
    if any(os.sep + d + os.sep in filename for d in _PACKAGE_DIRS) or _stdlib_top(filename) is not None:
        return True
    main, _, roots = _main_seen()
    absolute = os.path.abspath(filename)
    if main is not None and absolute == main:
        return True
    for root in EXTRA_ROOTS:
        if absolute.startswith(os.path.join(root, "")):
            return True
    module = _file_modules.get(filename)
    if module is None:
        return False
    stem = os.path.splitext(absolute)[0]
    if os.path.basename(stem) == "__init__":
        stem = os.path.dirname(stem)
    tail = os.sep + module.replace(".", os.sep)
    if stem.endswith(tail):
        root = stem[: -len(tail)] or os.sep
        if root in roots or os.path.realpath(root) in roots:
            return True
    # last, as it may read every installed distribution's entry points once (``published``)
    return module.partition(".")[0] in _program_packages()


def own_code(code: CodeType, module: object = None) -> bool:
    """Code the program ships: compiled from one of its module files or its main script (a file, or the
    ``python -c`` string itself), not from another string or file (``exec`` of a ``settings.py`` or of text
    the program was given), nor from a file it imported from elsewhere at run time (``_program_file``).

    ``module``: the name in the running frame's globals, when the caller has it. If that imported
    module's own file is the code's file, it is a module file without listing every module's file (which
    costs ~0.6 ms with the SDK loaded, and again after each import): that file is one of the files
    listed, so the answer is the one the list gives. Otherwise the list decides."""
    filename = code.co_filename
    if type(module) is str:
        f = getattr(sys.modules.get(module), "__file__", None)
        if type(f) is str and (f == filename or (f.endswith((".pyc", ".pyo")) and f[:-1] == filename)):
            if filename not in _file_modules:
                _file_modules[filename] = module
            return _program_file(filename)
    if filename == "<string>":  # the ``python -c`` program (no module has that file): its own check
        return _in_command_string(code) or filename in _module_files()
    return filename in _module_files() and _program_file(filename)


_command_codes: list[dict[int, CodeType]] = []  # the ``python -c`` program's code objects, by id
_command_top: list[CodeType] = []  # and its outermost code: its literals name the string's functions


def _in_command_string(code: CodeType) -> bool:
    """``code`` belongs to the ``python -c`` program itself: nested in the outermost frame's code of the
    main thread, which runs that string. Code ``exec``'d from any other string is not nested there."""
    if not sys.argv or sys.argv[0] != "-c":
        return False
    if not _command_codes:
        frame = sys._getframe()
        while frame.f_back is not None:
            frame = frame.f_back
        top = frame.f_code
        if top.co_filename != "<string>" or top.co_name != "<module>" or frame.f_globals.get("__name__") != "__main__":
            return False  # not on the main thread's stack (no cache: asked again from there)
        codes: dict[int, CodeType] = {}
        stack = [top]
        while stack:
            c = stack.pop()
            codes[id(c)] = c
            stack.extend(k for k in c.co_consts if hasattr(k, "co_consts"))
        _command_codes.append(codes)
        _command_top.append(top)
    return _command_codes[0].get(id(code)) is code


def _parts(text: str, out: set[str]) -> None:
    """A short literal and its parts: ``"list | ls"`` (an alias table a group splits at run time)
    also gives ``list`` and ``ls``; the parts are as fixed by the code as the whole."""
    out.add(text)
    if len(text) <= MAX_LITERAL and any(sep in text for sep in "|,; "):
        for piece in text.replace("|", " ").replace(",", " ").replace(";", " ").split():
            out.add(piece)


def _code_literals(code: CodeType) -> frozenset[str]:
    """String constants of ``code`` and of every code object nested in it (short ones also split into
    their words), and their ``def`` names."""
    hit = _literals.get(id(code))
    if hit is not None and hit[0] is code:
        return hit[1]
    out: set[str] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        out.add(c.co_name)
        for const in c.co_consts:
            t = type(const)
            if t is str:
                _parts(const, out)
            elif t is tuple or t is frozenset:
                stack_items = [const]
                while stack_items:  # nested tuples of constants (("a", ("b", "c")))
                    for item in stack_items.pop():
                        if type(item) is str:
                            _parts(item, out)
                        elif type(item) in (tuple, frozenset):
                            stack_items.append(item)
            elif hasattr(const, "co_consts"):
                stack.append(const)
    literals = frozenset(out)
    if len(_literals) >= _CACHE_MAX:
        _literals.clear()
    _literals[id(code)] = (code, literals)
    return literals


def _module_literals(name: str) -> frozenset[str]:
    """Literals of a whole module file (its code as the loader compiles it), or nothing when unknown."""
    known = _modules.get(name)
    if known is not None:
        return known
    literals: frozenset[str] = frozenset()
    module = sys.modules.get(name)
    try:
        loader = getattr(module, "__loader__", None)
        get_code = getattr(loader, "get_code", None)
        spec = getattr(module, "__spec__", None)
        code = get_code(getattr(spec, "name", None) or name) if get_code is not None else None
        file = getattr(module, "__file__", None)
        if code is None and type(file) is str and file.endswith(".py"):  # a loader without get_code
            with open(file, "rb") as fh:
                code = compile(fh.read(), file, "exec", dont_inherit=True)
        if code is not None and own_code(code):
            literals = _code_literals(code)
    except Exception:
        literals = frozenset()
    if len(_modules) >= 256:
        _modules.clear()
    _modules[name] = literals
    return literals


def _derived(name: str, code_name: str) -> bool:
    """``name`` is what click or typer makes of a function's ``def`` name (``sync_all`` -> ``sync-all``)."""
    if name == code_name:
        return True
    base = code_name.lower().replace("_", "-")
    if name == base:
        return True
    for suffix in ("-command", "-cmd", "-group", "-grp"):
        if base.endswith(suffix) and name == base[: -len(suffix)]:
            return True
    return name == base.strip("-")


def _unwrap(fn: object) -> object:
    for _ in range(8):
        inner = getattr(fn, "__wrapped__", None)
        if inner is None:
            break
        fn = inner
    return fn


def in_code(text: str, frame: FrameType | None = None, functions: Iterable[object] = (),
            modules: Iterable[str] = ()) -> bool:
    """Whether ``text`` is written in the program's own code: a string constant (or ``def`` name) of
    the own-code frames on the stack from ``frame`` up (framework frames skipped), of ``functions``
    (``text`` may also be click's/typer's name for the function), or of the whole files of ``modules``
    (``__main__`` always included). Each code object's constants are computed once."""
    if type(text) is not str or not text:
        return False
    fns = [_unwrap(f) for f in functions]
    for fn in fns:
        code = getattr(fn, "__code__", None)
        if code is not None and own_code(code) and (_derived(text, code.co_name) or text in _code_literals(code)):
            return True
    f = frame
    depth = 0
    while f is not None and depth < 64:
        depth += 1
        module = f.f_globals.get("__name__", "")
        if type(module) is str and module.partition(".")[0] not in FRAMEWORK_MODULES:
            code = f.f_code
            if own_code(code) and text in _code_literals(code):
                return True
        f = f.f_back
    names = ["__main__", *modules]
    for fn in fns:
        module = getattr(fn, "__module__", None)
        if type(module) is str:
            names.append(module)
    for name in dict.fromkeys(names):
        if name.partition(".")[0] not in FRAMEWORK_MODULES and text in _module_literals(name):
            return True
    return False


def published(text: str) -> bool:
    """Whether ``text`` is the name of an entry point an installed distribution publishes (a plugin's
    or a console script's name is public). Read once per process from the ``entry_points.txt`` files
    on ``sys.path``, without importing ``importlib.metadata``."""
    if not _entry_points:
        names: set[str] = set()
        for entry in list(sys.path):
            try:
                if not entry or not os.path.isdir(entry):
                    continue
                listing = os.listdir(entry)
            except OSError:
                continue
            for item in listing:
                if not item.endswith((".dist-info", ".egg-info")):
                    continue
                try:
                    with open(os.path.join(entry, item, "entry_points.txt"), encoding="utf-8") as fh:
                        lines = fh.read(1 << 20).splitlines()
                except OSError:
                    continue
                for line in lines:
                    key, eq, target = line.partition("=")
                    if eq and not line.lstrip().startswith(("#", ";", "[")):
                        names.add(key.strip())
                        top = target.strip().partition(":")[0].partition(".")[0].strip()
                        if top.isidentifier():  # what program a console script runs (error signatures)
                            _entry_targets.setdefault(key.strip(), set()).add(top)
        _entry_points.append(frozenset(names))
    return text in _entry_points[0]


def command_word(word: object, declared: frozenset[str] | None = None, frame: FrameType | None = None,
                 functions: Iterable[object] = (), modules: Iterable[str] = ()) -> str:
    """One word of a command path: kept when declared (``init(commands=...)``), written in the program's
    code (see ``in_code``) or published as an entry point; else ``DYNAMIC``. Integrations call this for
    every name a framework resolved (a group's listing proves nothing: plugins live there too)."""
    if not printable(word):
        return DYNAMIC
    text: str = word  # type: ignore[assignment]
    if declared is not None and text in declared:
        return text
    if in_code(text, frame, functions, modules) or published(text):
        return text
    return DYNAMIC


def command_path(words: Iterable[str], declared: frozenset[str] | None = None, frame: FrameType | None = None,
                 functions: Iterable[object] = (), modules: Iterable[str] = ()) -> str:
    """A whole command path (``remote add``): the path itself when declared, else word by word."""
    words = list(words)
    path = " ".join(words)
    if declared is not None and path in declared and printable(path):
        return path
    fns = list(functions)
    return " ".join(command_word(w, declared, frame, fns, modules) for w in words)


def executable_name(argv0: object, service_name: str) -> str:
    """``process.executable.name``: the installed console script the user ran (its name is published by
    a distribution's entry points), else the app's service name; never a script file's own name."""
    if type(argv0) is str and argv0 not in ("", "-c", "-m"):
        base = os.path.basename(argv0)
        for suffix in ("-script.pyw", "-script.py", ".exe"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        if base and not base.endswith((".py", ".pyw", ".pyz")) and printable(base) and published(base):
            return base
    return service_name


def error_type(exc: BaseException) -> str:
    """``error.type``: the exception's class when a class statement of an importable module (or a builtin)
    made it, else its nearest such base: a class made at run time (``type(code, (Exception,), {})``)
    may carry anything in its name."""
    cls = type(exc)
    known = _error_types.get(cls) or _stand_ins.get(cls)
    if known is not None:
        return known
    name = "Exception"
    for base in cls.__mro__:
        found = _static_name(base)
        if found is not None:
            name = found
            break
    if len(_error_types) >= 1024:
        _error_types.clear()
    _error_types[cls] = name
    return name


def stand_in(cls: type, real: type) -> None:
    """Report the integration's own exception class ``cls`` as the framework's ``real`` one (a usage error
    recorded without raising the framework's class, which may be a SystemExit): under ``real``'s static
    name when ``real`` is a class statement of an importable module, else as ``cls`` would be."""
    name = _static_name(real)
    if name is not None:
        _stand_ins[cls] = name


def _static_name(cls: type) -> str | None:
    module_name = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", None)
    if type(module_name) is not str or type(qualname) is not str or not printable(qualname):
        return None
    if module_name == "builtins":
        import builtins

        return qualname if getattr(builtins, qualname, None) is cls else None
    module = sys.modules.get(module_name)
    if module is None or "<" in qualname:
        return None
    obj: object = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if obj is not cls:
        return None
    file = getattr(module, "__file__", None)
    if type(file) is str and file.endswith((".py", ".pyc")):
        # a Python module: the class statement itself must be in its file (``class Name:`` compiles to
        # a code object of that name), not a class made at run time and stored under a module attribute
        if qualname.rpartition(".")[2] not in _module_literals(module_name):
            return None
    elif module_name != "__main__" and file is None and module_name not in sys.builtin_module_names:
        return None
    return qualname if module_name == "__main__" else f"{module_name}.{qualname}"


# -- error signatures (``cli.error.signature``) ---------------------------------------------------------------
SIGNATURE_MAX_FRAMES = 8
"""At most this many frames; a deeper signature keeps the outermost ``SIGNATURE_HEAD`` and the innermost
``SIGNATURE_MAX_FRAMES - SIGNATURE_HEAD``, with ``SIGNATURE_GAP`` between them."""
SIGNATURE_HEAD = 2
SIGNATURE_GAP = "…"
SIGNATURE_SEPARATOR = " > "
_COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})
"""Frames CPython 3.12 inlines (PEP 709) and older versions do not: dropped on every version, so one code path
gives one signature whatever the interpreter."""
_FIXED_CODE_NAMES = frozenset({"<lambda>", "<module>"})
"""Names CPython gives code, never taken from the program's text: kept as they are."""
_PACKAGE_DIRS = ("site-packages", "dist-packages")
# id(code) -> (code, module name seen, lowest level shown, text, whether it names a frame); see _classify:
# kinds "own", "third" (an installed distribution's module), "stdlib" (text: the bare top-level module),
# "dynamic" (a placeholder), "hidden" (never shown)
_frames: dict[int, tuple[CodeType, object, int, str, bool]] = {}
_labels: dict[int, tuple[CodeType, object, str]] = {}  # id(code) -> (code, module name seen, frame_label)
_program: list[frozenset[str]] = []  # top-level packages of the program itself (its entry point, ``-m``)
_entry_targets: dict[str, set[str]] = {}  # entry point name -> top-level packages of its targets
_roots: list[object] = [None, frozenset(), None]  # [sys.path as a tuple, its entries made absolute, resolved]


def signature(exc: BaseException, level: int) -> str | None:
    """``cli.error.signature`` of ``exc`` (the exception that ended the command or was handled, never its
    ``__cause__`` or ``__context__``): the frames of its traceback the level allows, outermost first, each
    ``module:function``, joined by ``" > "``; consecutive repeats (recursion) collapsed; at most
    ``SIGNATURE_MAX_FRAMES`` frames (the outermost two, ``…``, the innermost six). None when no frame is
    allowed. The same code path gives the same string on every machine and Python version: no line numbers,
    paths, addresses or values, and ``co_name`` (never ``co_qualname``, 3.11+ only).

    What a level allows (``SIGNATURE_RULE``), decided per code object by construction:

    - the library's own frames and the dispatch frameworks' (``FRAMEWORK_MODULES``) are never shown;
    - a frame of code not compiled from an imported module's file or the main script (``exec``, ``eval``,
      ``<string>``, a ``settings.py`` run with ``exec``) is ``<dynamic>``, and so is a frame whose module
      name is not the name the import system gives its file (a module loaded from an arbitrary path under
      a name made at run time);
    - the program's own frames (its main script, modules outside ``site-packages``/``dist-packages`` and the
      standard library, and the packages of its own entry point) at every level;
    - installed third-party distributions' modules from ``enhanced``; the standard library from
      ``enhanced``, as its bare top-level module (``json``), never its functions;
    - a function name is kept only when it is a ``def``/``class`` name (or literal) of its module's file,
      else ``<dynamic>``; ``<lambda>`` and ``<module>`` are CPython's fixed names; comprehension frames are
      dropped.
    """
    if level <= 0:
        return None
    parts: list[str] = []
    allowed = False
    frames = _frames
    tb = exc.__traceback__
    while tb is not None:  # every frame: the innermost ones (kept) come last
        frame = tb.tb_frame
        tb = tb.tb_next
        code = frame.f_code
        module = frame.f_globals.get("__name__")
        hit = frames.get(id(code))
        if hit is None or hit[0] is not code or (hit[1] is not module and hit[1] != module):
            hit = _classify(code, module)
        if hit[2] > level:  # hidden (4), or from enhanced (2) at basic
            continue
        allowed = allowed or hit[4]
        text = hit[3]
        if not parts or parts[-1] != text:
            parts.append(text)
    if not allowed:
        return None
    if len(parts) > SIGNATURE_MAX_FRAMES:
        parts = [*parts[:SIGNATURE_HEAD], SIGNATURE_GAP, *parts[SIGNATURE_HEAD - SIGNATURE_MAX_FRAMES:]]
    return SIGNATURE_SEPARATOR.join(parts)


_KIND_LEVEL = {"own": 1, "dynamic": 1, "third": 2, "stdlib": 2, "hidden": 4}
"""The lowest level at which a frame of each kind is shown (4: never)."""


def _classify(code: CodeType, module: object) -> tuple[CodeType, object, int, str, bool]:
    """One frame's (code, module, lowest level shown, text, names a frame) (see ``signature``), remembered
    per code object."""
    try:
        kind, text = _frame_text(code, module)
    except Exception:
        kind, text = "dynamic", DYNAMIC
    entry = (code, module, _KIND_LEVEL[kind], text, kind != "dynamic" and not text.endswith(":" + DYNAMIC))
    if len(_frames) >= _CACHE_MAX:
        _frames.clear()
    _frames[id(code)] = entry
    return entry


def _frame_text(code: CodeType, module: object) -> tuple[str, str]:
    if type(module) is not str or not module:
        return "dynamic", DYNAMIC
    top = module.partition(".")[0]
    if top in FRAMEWORK_MODULES or code.co_name in _COMPREHENSIONS:
        return "hidden", ""
    stdlib = _stdlib_top(code.co_filename)
    if stdlib is not None:
        return ("stdlib", stdlib) if stdlib.partition(".")[0] not in FRAMEWORK_MODULES else ("hidden", "")
    text = frame_label(code, module)
    if text == DYNAMIC:
        return "dynamic", DYNAMIC
    installed = any(os.sep + d + os.sep in code.co_filename for d in _PACKAGE_DIRS)
    if installed and top not in _program_packages():
        return "third", text
    return "own", text


def frame_label(code: CodeType, module: object) -> str:
    """``module:function`` of a frame running ``code`` in the module named ``module`` (its globals'
    ``__name__``), each part only as the program's code fixes it: the module when ``code`` was compiled from
    an imported module's file (or the main script, or is a frozen standard module) and ``module`` is the name
    the import system gives that file; the function when it is a ``def``/``class`` name or literal of that
    file, or a name CPython gives (``<lambda>``, ``<module>``...). Else ``<dynamic>`` in its place (the
    whole label when the module is not proved). Remembered per code object."""
    hit = _labels.get(id(code))
    if hit is not None and hit[0] is code and hit[1] == module:
        return hit[2]
    try:
        label = _label(code, module)
    except Exception:
        label = DYNAMIC
    if len(_labels) >= _CACHE_MAX:
        _labels.clear()
    _labels[id(code)] = (code, module, label)
    return label


def _label(code: CodeType, module: object) -> str:
    if type(module) is not str or not module or not printable(module):
        return DYNAMIC
    filename = code.co_filename
    if filename != f"<frozen {module}>":
        if not own_code(code):
            _files[0] = -1  # the set of module files is rebuilt when the module count changes: make sure
            if not own_code(code):
                return DYNAMIC
        if module != "__main__" and not _import_name(filename, module):
            return DYNAMIC
    name = code.co_name
    fixed = name in _FIXED_CODE_NAMES or name in _COMPREHENSIONS or name in _signature_literals(module, filename)
    return f"{module}:{name if fixed and printable(name) else DYNAMIC}"


def _stdlib_top(filename: str) -> str | None:
    """The top-level standard library module of a file of the standard library (or a frozen module), else
    None: the bare module name is all a signature shows of the standard library."""
    if filename.startswith("<frozen ") and filename.endswith(">"):
        return filename[8:-1].partition(".")[0] or None
    base = os.path.dirname(os.__file__)
    prefix = os.path.join(base, "")
    if not filename.startswith(prefix) or any(os.sep + d + os.sep in filename for d in _PACKAGE_DIRS):
        return None
    first = filename[len(prefix):].split(os.sep, 1)[0]
    top = first[:-3] if first.endswith(".py") else first
    return top if top.isidentifier() else None


def _import_name(filename: str, module: str) -> bool:
    """``module`` is the name the import system gives ``filename`` from an entry of ``sys.path``: fixed by
    where the program's files are, not by a name given at run time (``spec_from_file_location``)."""
    stem, ext = os.path.splitext(filename)
    if ext not in (".py", ".pyc", ".pyw"):
        return False
    if os.path.basename(stem) == "__init__":
        stem = os.path.dirname(stem)
    tail = os.sep + module.replace(".", os.sep)
    if not os.path.isabs(stem) and getattr(sys, "frozen", False):  # PyInstaller: relative to the bundle
        return os.sep + stem == tail
    if not stem.endswith(tail):
        return False
    root = stem[: -len(tail)] or os.sep
    if root in _sys_path_roots(False):
        return True
    return os.path.realpath(root) in _sys_path_roots(True)  # a link on the way: compare resolved paths


def _sys_path_roots(resolved: bool) -> frozenset[str]:
    """The entries of ``sys.path`` made absolute (``resolved``: with links resolved, computed when asked)."""
    path = tuple(p for p in sys.path if type(p) is str)
    if _roots[0] != path:
        _roots[:] = [path, frozenset(os.path.abspath(entry or os.curdir) for entry in path), None]
    if resolved and _roots[2] is None:
        _roots[2] = frozenset(os.path.realpath(entry) for entry in _roots[1])  # type: ignore[attr-defined]
    return _roots[2 if resolved else 1]  # type: ignore[return-value]


def _signature_literals(module: str, filename: str) -> frozenset[str]:
    """The ``def``/``class`` names and literals of ``module``'s file (see ``_module_literals``); for a main
    module already gone from ``sys.modules`` (at exit), of the main script's file itself."""
    literals = _module_literals(module)
    if literals or module != "__main__":
        return literals
    if filename == "<string>":  # the ``python -c`` program: no file, but its code is known (``own_code``)
        return _code_literals(_command_top[0]) if _command_top else frozenset()
    try:
        with open(filename, "rb") as fh:
            code = compile(fh.read(), filename, "exec", dont_inherit=True)
    except Exception:
        return frozenset()
    return _code_literals(code) if own_code(code) else frozenset()


def _program_packages() -> frozenset[str]:
    """Top-level packages of the program itself: its ``python -m`` package and the targets of the entry
    point the user ran (``sys.argv[0]``'s console script, or its ``otel_expansion.entry`` target)."""
    if not _program:
        tops: set[str] = set()
        spec_name = _main_seen()[1]
        if type(spec_name) is str and spec_name and spec_name != "__main__":
            tops.add(spec_name.partition(".")[0])
        argv0 = sys.argv[0] if sys.argv and type(sys.argv[0]) is str else ""
        base = os.path.basename(argv0)
        for suffix in ("-script.pyw", "-script.py", ".exe"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        if base:
            published(base)  # reads the entry points once, targets included
            tops.update(_entry_targets.get(base, ()))
        tops.discard("otel_expansion")
        _program.append(frozenset(tops))
    return _program[0]
