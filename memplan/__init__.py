"""memplan: scratchpad memory planning for neural-network accelerators."""

from __future__ import annotations

__version__ = "0.1.0"
