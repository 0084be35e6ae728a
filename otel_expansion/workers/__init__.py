"""The orchestrators: the detached sender and a long-running program's service runtime.

``SENDER_ENTRY`` is the module a sender process runs (``python -m``). Lower layers never name it: whoever
starts a sender (the library's exit path, the service runtime) passes it to ``export.launcher.spawn``, so
the dependency is explicit, and ``tests/test_layers.py`` checks module names in strings like imports.
"""

SENDER_ENTRY = "otel_expansion.workers.sender"
