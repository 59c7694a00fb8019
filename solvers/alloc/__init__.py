"""Scratchpad allocators (dynamic storage allocation)."""
