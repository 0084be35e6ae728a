"""TELEMETRY.md stays generated from the signal declarations."""

from __future__ import annotations

from pathlib import Path

from otel_expansion.sdk import signals
from otel_expansion.sdk.docs import telemetry_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_telemetry_md_is_in_sync() -> None:
    """The committed TELEMETRY.md equals what `otel-expansion docs` generates (regenerate if this fails)."""
    assert (ROOT / "TELEMETRY.md").read_text() == telemetry_markdown()


def test_readme_states_the_privacy_rule_generated_from_the_code() -> None:
    """The docs site's privacy-rule block (docs/privacy.md) equals what privacy/vocabulary.py generates
    (regenerate if not)."""
    import re

    from otel_expansion.privacy.vocabulary import RULE, rules_markdown

    text = (ROOT / "docs" / "privacy.md").read_text()
    block = re.search(r"<!-- privacy-rule:[^\n]*-->\n(.*?)<!-- /privacy-rule -->", text, flags=re.S)
    assert block is not None and block.group(1) == rules_markdown()
    assert RULE in telemetry_markdown()


def test_every_metric_attribute_is_declared() -> None:
    """No metric uses an attribute the level rules do not know about."""
    for metric in signals.METRICS:
        for attr in metric.attributes:
            assert attr in signals.ATTRIBUTES, (metric.name, attr)
        assert signals.allowed_attributes(metric.level, metric.attributes) or not metric.attributes
