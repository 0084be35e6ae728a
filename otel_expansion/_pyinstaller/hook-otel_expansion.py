"""PyInstaller hook: bundle every module of the package (the sender and its SDK pipeline are imported
inside functions, some by name) and the metadata the OpenTelemetry SDK reads its entry points from."""

import contextlib

from PyInstaller.utils.hooks import collect_submodules, copy_metadata

hiddenimports: list[str] = [m for m in collect_submodules("otel_expansion")
                            if not m.startswith(("otel_expansion._pyinstaller", "otel_expansion.backend"))]
hiddenimports += ["opentelemetry.sdk", "opentelemetry.proto", "opentelemetry.exporter.otlp.proto.common"]
datas: list[tuple[str, str]] = []
for dist in ("otel-expansion", "opentelemetry-api", "opentelemetry-sdk"):
    with contextlib.suppress(Exception):  # run from a source tree (--paths): no metadata to copy
        datas += copy_metadata(dist)
