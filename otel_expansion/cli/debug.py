"""``otel-expansion debug``: the effective configuration and every variable that shapes it."""

from __future__ import annotations

import argparse
import os
from typing import Any

from otel_expansion.cli.common import EXIT_OK, add_target, safe_url, settings_of
from otel_expansion.config.settings import VARIABLES


def run(args: argparse.Namespace) -> int:
    s = settings_of(args)
    print("effective settings:")
    for field in ("service_name", "home", "level", "level_source", "opt_out_reason", "debug", "send", "endpoint",
                  "spool_max_bytes", "spool_max_age_s", "sender_timeout_s", "metric_interval_s"):
        print(f"  {field:<18} {getattr(s, field)}")
    from otel_expansion.export.otlp_config import otlp_config_from_env

    cfg = otlp_config_from_env(endpoint=s.endpoint)
    print(f"  {'traces_url':<18} {safe_url(cfg.traces_url)}\n  {'metrics_url':<18} {safe_url(cfg.metrics_url)}")
    print(f"  {'protocol':<18} {cfg.protocol}\n  {'compression':<18} {cfg.compression}")
    print("environment:")
    for name in VARIABLES:
        if name in os.environ:
            value = "<set>" if "HEADERS" in name or "SALT" in name else os.environ[name]
            print(f"  {name}={value}")
    print("tip: OTEL_EXPANSION_DEBUG=1 prints each run's record to stderr; `show` lists everything pending")
    return EXIT_OK


def register(sub: Any) -> None:
    p = add_target(sub.add_parser("debug", help="effective configuration and variables"))
    p.set_defaults(func=run)
