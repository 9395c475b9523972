"""Task-weighting methods: one file each, on :class:`~src.methods.base.WeightingMethod`."""

from src.methods.base import WeightingMethod

__all__ = ["WeightingMethod"]
