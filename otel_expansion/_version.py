"""The distribution version, in a module of its own so any layer can read it without importing the API."""

__version__ = "0.3.0"
