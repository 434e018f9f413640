"""Fixtures many test modules share."""

from __future__ import annotations

import pytest

from opencodegen.eval.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox():
    """Two sandbox workers for a module's judged runs (a module that needs preloaded libraries defines its own)."""
    with Sandbox(workers=2, announce=False) as sb:
        yield sb
