"""Model errors. Each message is one sentence an engineer can act on."""

from __future__ import annotations


class ModelError(Exception):
    """A model package is missing, corrupt, mismatched, or a prediction failed."""
