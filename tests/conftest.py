"""Shared by every tier: the fuzz tier runs only when named (`make fuzz`), not in `make test`."""

# `pytest` and `pytest tests` skip tests/fuzz; `pytest tests/fuzz` still collects it.
collect_ignore = ["fuzz"]
