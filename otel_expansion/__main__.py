"""``python -m otel_expansion`` runs the ``otel-expansion`` command."""

import sys

from otel_expansion.cli.main import main

sys.exit(main())
