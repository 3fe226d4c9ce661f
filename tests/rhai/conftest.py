"""Shared fixtures for the rhai binding tests (no Django needed)."""

import pytest
import rhai


@pytest.fixture
def engine() -> rhai.Engine:
    return rhai.Engine()
