"""Shared trunks and per-task heads."""

from src.models.multitask import MultiTaskModel

__all__ = ["MultiTaskModel"]
