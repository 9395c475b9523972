"""Parameters as flat vectors: the one place that flattens, copies back and splits them.

αVIL's deltas, ForkMerge's branches, per-task gradients and look-aheads all treat a list of parameters as
one vector, in the list's order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector


def flatten(params: Sequence[nn.Parameter]) -> Tensor:
    """The parameters as one flat vector (a copy, detached)."""
    return parameters_to_vector(params).detach()


def assign(params: Sequence[nn.Parameter], flat: Tensor) -> None:
    """Copy ``flat`` into the parameters.

    Not ``torch.nn.utils.vector_to_parameters``: that re-points each parameter's ``.data`` at a view of
    ``flat``, so the next training step would write into the vector it was given.
    """
    with torch.no_grad():
        for p, piece in zip(params, pieces(params, flat)):
            p.copy_(piece)


def pieces(params: Sequence[nn.Parameter], flat: Tensor) -> list[Tensor]:
    """``flat`` cut into views shaped like each parameter."""
    return [piece.view_as(p) for p, piece in zip(params, flat.split([p.numel() for p in params]))]


def flat_grad(grads: Sequence[Tensor | None], params: Sequence[nn.Parameter]) -> Tensor:
    """One flat vector of ``grads`` (zeros where a parameter was not reached), in ``params``' order."""
    if not params:
        return torch.zeros(0)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def cosines(rows: Tensor, target: Tensor) -> Tensor:
    """The cosine of each row of ``rows`` with ``target`` (0 where either is the zero vector)."""
    return rows @ target / (rows.norm(dim=1) * target.norm()).clamp_min(torch.finfo(rows.dtype).tiny)
