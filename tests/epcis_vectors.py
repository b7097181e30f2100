"""Where GS1's EPCIS 2.0 test data is read from, in place: ../shared/vectors/epcis
beside the repository (never copied into it; see its README for its sources)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "epcis"


def require_vectors() -> Path:
    """The vectors' folder; a test module without it is skipped with the reason, and
    fails under CI=true, which must provide ../shared."""
    if not VECTORS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"EPCIS vectors missing at {VECTORS}: CI must provide ../shared",
                        pytrace=False)
        pytest.skip(f"EPCIS vectors not found at {VECTORS} (../shared/vectors/epcis)",
                    allow_module_level=True)
    return VECTORS


def vectors_for_test() -> Path:
    """The same, inside one test: skipped without them (failed under CI=true)."""
    if not VECTORS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"EPCIS vectors missing at {VECTORS}: CI must provide ../shared",
                        pytrace=False)
        pytest.skip(f"EPCIS vectors not found at {VECTORS} (../shared/vectors/epcis)")
    return VECTORS
