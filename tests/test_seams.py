"""The seams between stages are typed: no ``Any`` in the public signatures of the modules that form them.

A seam is where one stage hands data or a collaborator to another (spool, transport, redactor, telemetry
handle, recorder, journal records and bodies on the reading side). ``Any`` there lets a wrong argument pass
mypy unseen, which is how seams silently rot. Private helpers may still use ``Any`` locally.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "otel_expansion"

SEAM_MODULES = (
    "export/delivery.py",  # Delivery(spool, transport)
    "export/health.py",  # MeteredTransport(inner, spool, settings, config)
    "export/ports.py",  # the spool protocol delivery uses
    "export/transport.py",  # the Transport protocol and SendResult
    "sdk/pipeline.py",  # Pipeline(redactor), Pipeline.ingest(record)
    "sdk/replay.py",  # Replayer.replay(records)
    "sdk/staging.py",  # the staging processor and reader (redactor, span batches)
    "sdk/otel_internals.py",  # the adapter's public helpers
    "collect/integrations/__init__.py",  # Integration.install(telemetry handle)
    "journal/store.py",  # journal.read -> Record
    "journal/record.py",
    "otlp/model.py",
    "workers/sender.py",  # open_spool, ingest_journal, run_round, settings_for
    "config/__init__.py",  # the one settings loader
    "_runtime.py",  # init() -> _init -> _start -> _restart: the options travel as InitOptions
)
ALLOWED = {
    # the SDK's own hook signature, overridden (its parameters are untyped in the SDK)
    ("sdk/otel_internals.py", "BatchingHistogramAggregation._create_aggregation"),
    ("sdk/otel_internals.py", "_BatchingHistogram.aggregate"),
    # ``Settings(**values)``: one keyword per field, each checked against the declared fields at run time
    ("config/__init__.py", "Settings.__init__"),
    # keyword options forwarded unchanged to ``resolve``, whose own signature types each of them
    ("config/__init__.py", "load"),
}


def _mentions_any(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id == "Any":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Any":
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"\bAny\b", node.value):
            return True
    return False


def _public_functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []

    def walk(body: list[ast.stmt], owner: str, public: bool) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if public and (not node.name.startswith("_") or node.name == "__init__"):
                    found.append((owner + node.name, node))
            elif isinstance(node, ast.ClassDef):
                walk(node.body, f"{owner}{node.name}.", public and not node.name.startswith("_"))
            elif isinstance(node, ast.If):  # ``if TYPE_CHECKING:`` protocols
                walk(node.body, owner, public)

    walk(tree.body, "", True)
    return found


def any_in_signatures(rel: str) -> list[str]:
    path = PACKAGE / rel
    tree = ast.parse(path.read_text(), str(path))
    wrong = []
    for name, fn in _public_functions(tree):
        if (rel, name) in ALLOWED:
            continue
        args = fn.args
        annotations = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
        annotations += [args.vararg.annotation if args.vararg else None,
                        args.kwarg.annotation if args.kwarg else None, fn.returns]
        if any(_mentions_any(a) for a in annotations):
            wrong.append(f"{rel}:{fn.lineno} {name}")
    return wrong


@pytest.mark.parametrize("rel", SEAM_MODULES)
def test_no_any_in_seam_signatures(rel: str) -> None:
    assert any_in_signatures(rel) == []


def test_the_check_sees_any() -> None:
    """The scan finds ``Any`` in a parameter, a return, a string annotation and a protocol method."""
    source = (
        "from typing import Any, Protocol\n"
        "def f(x: Any) -> None: ...\n"
        "def g() -> 'list[Any]': ...\n"
        "class P(Protocol):\n    def m(self, t: dict[str, Any]) -> None: ...\n"
        "def _private(x: Any) -> Any: ...\n"
        "def h(x: 'Anything') -> None: ...\n"
    )
    tree = ast.parse(source)
    hits = sorted(name for name, fn in _public_functions(tree)
                  if any(_mentions_any(a) for a in [*(a.annotation for a in fn.args.args), fn.returns]))
    assert hits == ["P.m", "f", "g"]


def test_service_and_recorder_seams_are_concrete() -> None:
    """ServiceRuntime takes the Recorder; the launcher is given the sender's entry, never names it."""
    import inspect

    from otel_expansion.export import launcher
    from otel_expansion.workers.service import ServiceRuntime

    assert inspect.signature(ServiceRuntime.__init__).parameters["recorder"].annotation == "Recorder"
    assert inspect.signature(launcher.spawn).parameters["entry"].kind is inspect.Parameter.KEYWORD_ONLY


def test_runtime_options_are_typed_in_every_signature() -> None:
    """init()'s options travel ``init -> _init -> _start -> _restart`` as the InitOptions TypedDict (a
    type-only import), and no function of _runtime, private ones included, takes or returns ``Any``."""
    path = PACKAGE / "_runtime.py"
    tree = ast.parse(path.read_text(), str(path))
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    for name in ("_init", "_start", "_restart"):
        options = next(a for a in functions[name].args.args if a.arg == "options")
        assert ast.unparse(options.annotation) == "InitOptions", name  # type: ignore[arg-type]
    wrong = []
    for name, fn in functions.items():
        if name == "wrapper":  # the decorator's pass-through of the app's own arguments
            continue
        args = fn.args
        annotations = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
        annotations += [args.vararg.annotation if args.vararg else None,
                        args.kwarg.annotation if args.kwarg else None, fn.returns]
        if any(_mentions_any(a) for a in annotations):
            wrong.append(f"{name}:{fn.lineno}")
    assert wrong == []
    assert "InitOptions" in {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
