"""Shared pytest fixtures (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import light_model_path as _light_model_path


@pytest.fixture
def light_model_path() -> Callable[[str], Path]:
    """Return the function locating ``light_<name>.onnx`` in the installed onnx wheel."""
    return _light_model_path
