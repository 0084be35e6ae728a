"""PyInstaller runtime hook: runs before the frozen program; started as its own sender, the app sends and
exits here, without importing the program."""

from otel_expansion.workers.frozen import serve_if_asked

serve_if_asked()
