"""Loss-conditional training's half in the model: FiLM layers that modulate a shared trunk by the auxiliary weights.

YOTO (Dosovitskiy & Djolonga, "You Only Train Once", ICLR 2020) trains one network on a whole family of loss
weightings: each example draws its weights λ, and the network is conditioned on λ through FiLM layers (Perez et
al. 2018: a per-channel scale and shift computed from λ by a small MLP). At test time the model at any λ stands in
for a model trained at that λ alone, so every weighting of a grid can be scored with forward passes.

Here λ holds one weight per auxiliary (the target's is 1). It enters on a log scale with an explicit "dropped"
flag per auxiliary (weight 0: its log is set to 0 and the flag to 1), and the MLP's last layer starts at zero, so
an untrained conditioner is the identity and the model starts as the unconditioned one.

A batch carries its examples' λ under :data:`CONDITION` (``[batch, K]``); a forward without it (validation,
test, another method's probe) is conditioned on :attr:`Conditioner.default`, one λ for every example, which the
method sets (the reference weighting during training, the chosen one for the test). The trunk declares where
FiLM may act (``film_sites()``: a name → the module whose output is modulated, its channels and which dimension
holds them); forward hooks apply it, so a trunk needs no code of its own beyond naming its sites.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

CONDITION = "condition"
"""Key of a batch's per-example auxiliary weights ``[batch, K]`` (in the auxiliaries' order)."""

Site = tuple[nn.Module, int, int]  # the module whose output FiLM modulates, its channels, the channels' dimension


def weight_features(weights: Tensor) -> Tensor:
    """``[B, K]`` auxiliary weights → ``[B, 2K]``: each weight's log (0 where it is 0) and a "dropped" flag."""
    dropped = weights <= 0
    log = torch.where(dropped, torch.zeros_like(weights), weights.clamp_min(1e-12).log())
    return torch.cat([log, dropped.to(weights.dtype)], dim=-1)


class Conditioner(nn.Module):
    """FiLM at ``sites`` of a trunk, computed from the auxiliary weights by a two-layer MLP.

    Args:
        trunk: the module whose forward takes the batch (a dict); its sites' outputs are modulated.
        auxiliaries: the auxiliaries, in the order of a batch's :data:`CONDITION` columns.
        sites: name → :data:`Site`, the ones to condition.
        hidden: the MLP's hidden width.
    """

    def __init__(self, trunk: nn.Module, auxiliaries: Sequence[str], sites: Mapping[str, Site], hidden: int = 64):
        super().__init__()
        if not auxiliaries:
            raise ValueError(
                "model.net.condition.enabled=true: the task has no auxiliaries to condition on (task.auxiliaries=[])"
            )
        self.auxiliaries = list(auxiliaries)
        self.site_names = list(sites)
        self.channels = [channels for _, channels, _ in sites.values()]
        k = len(self.auxiliaries)
        self.mlp = nn.Sequential(nn.Linear(2 * k, hidden), nn.ReLU(), nn.Linear(hidden, 2 * sum(self.channels)))
        nn.init.zeros_(self.mlp[-1].weight)  # γ = 1, β = 0: the conditioned model starts as the unconditioned one
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("default", torch.ones(k))  # the λ of a forward whose batch carries none
        self._weights: Tensor | None = None  # this forward's λ, read from the batch by the trunk's pre-hook
        self._film: list[tuple[Tensor, Tensor]] | None = None  # this forward's (γ, β) per site
        # hooks, not submodules: the trunk's modules must not be registered (and saved) a second time here
        self._handles = [trunk.register_forward_pre_hook(self._read_batch)]
        for i, (module, _, dim) in enumerate(sites.values()):
            self._handles.append(module.register_forward_hook(self._modulate(i, dim)))

    def _read_batch(self, trunk: nn.Module, args: tuple[Any, ...]) -> None:
        batch = args[0] if args else None
        self._weights = batch.get(CONDITION) if isinstance(batch, Mapping) else None
        self._film = None

    def film(self, weights: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(γ, β) of each site for ``weights`` ``[B, K]``: γ = 1 + the MLP's scale output."""
        out = self.mlp(weight_features(weights.to(self.default.dtype)))
        pieces = out.split([c for c in self.channels for _ in (0, 1)], dim=-1)
        return [(1 + pieces[2 * i], pieces[2 * i + 1]) for i in range(len(self.channels))]

    def _modulate(self, index: int, dim: int):
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output
            if self._film is None:
                weights = self._weights
                if weights is None:
                    weights = self.default.expand(hidden.shape[0], -1)
                self._film = self.film(weights.to(hidden.device))
            gamma, beta = self._film[index]
            shape = [hidden.shape[0]] + [1] * (hidden.dim() - 1)
            shape[dim] = gamma.shape[-1]
            hidden = hidden * gamma.view(shape).to(hidden.dtype) + beta.view(shape).to(hidden.dtype)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return hook

    def get_extra_state(self) -> dict[str, Any]:
        return {"auxiliaries": list(self.auxiliaries), "sites": list(self.site_names)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if list(state["auxiliaries"]) != self.auxiliaries or list(state["sites"]) != self.site_names:
            raise ValueError(
                f"the checkpoint's conditional model is conditioned on auxiliaries {state['auxiliaries']} at sites "
                f"{state['sites']}, this model on {self.auxiliaries} at {self.site_names}: load it with the same "
                "task.auxiliaries and model.net.condition.sites"
            )


def conditioner(
    trunk: nn.Module, auxiliaries: Sequence[str], condition: Mapping[str, Any] | None
) -> Conditioner | None:
    """The :class:`Conditioner` ``model.net.condition`` asks for on ``trunk`` (``None`` when it is off)."""
    if not condition or not condition.get("enabled"):
        return None
    offered: dict[str, Site] = trunk.film_sites() if hasattr(trunk, "film_sites") else {}
    if not offered:
        raise ValueError(
            f"model.net.condition.enabled=true: the trunk {type(trunk).__name__} names no sites to condition "
            "(film_sites()); use model=lenet or an encoder, or condition.enabled=false"
        )
    names = list(condition.get("sites") or offered)
    if unknown := [s for s in names if s not in offered]:
        raise ValueError(
            f"model.net.condition.sites={names}: {unknown[0]!r} is not a site of {type(trunk).__name__} "
            f"({', '.join(offered)})"
        )
    return Conditioner(trunk, auxiliaries, {s: offered[s] for s in names}, int(condition.get("hidden", 64)))
