"""Suite-wide settings.

Hypothesis's per-example deadline is a timing threshold, which our tests never use
(performance is measured by benchmarks/, not asserted): on a busy 2-core CI machine
it only produces flaky failures."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("tidechain", deadline=None)
settings.load_profile("tidechain")
