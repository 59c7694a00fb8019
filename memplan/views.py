"""Jupyter views of the core types, attached from above.

The core types (``Graph``, ``Cost``, ``SolveResult``) show themselves in Jupyter through
``_repr_html_``, but the HTML lives in :mod:`memplan.viz`, which imports the core. So the
core never imports viz: viz registers a renderer per kind when it is imported, and
:func:`html_of` imports it by name the first time a view is asked for. This is the only
arrow from the core up to viz, and it is not an import statement.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: Package whose import registers the renderers.
VIEWS_PACKAGE = "memplan.viz"

_RENDERERS: dict[str, Callable[[Any], str]] = {}


def register_html(kind: str, render: Callable[[Any], str]) -> None:
    """Make ``render(obj)`` the HTML view of objects of ``kind`` (e.g. ``"graph"``)."""
    _RENDERERS[kind] = render


def html_of(obj: Any, kind: str) -> str:
    """The registered HTML view of ``obj``; imports :mod:`memplan.viz` on first use."""
    if kind not in _RENDERERS:
        importlib.import_module(VIEWS_PACKAGE)
    return _RENDERERS[kind](obj)
