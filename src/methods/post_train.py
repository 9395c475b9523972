"""Post-training (intermediate-task transfer): train on the auxiliaries, then fine-tune on the target.

The sequential baseline of ForkMerge's tables (Jiang et al., NeurIPS 2023, "post-train"; Phang et al.
2018, "STILTs", for its NLP form). The first ``aux_epochs`` epochs train on mixed batches of the
auxiliaries alone (the target's data untouched, its head idle); the remaining epochs train on the target
alone, with a fresh optimizer state (``reset_optimizer``) as a fine-tuning run would start. The auxiliary
phase draws each auxiliary's budget per epoch in ``task.batching``'s steps, without the target's. Checkpoint
selection is on the target's dev score as for every method, so it picks an epoch of the second phase.
"""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor

from src.data.schedule import Step, finish
from src.methods.base import WeightingMethod
from src.methods.options import PostTrainConfig


class PostTrain(WeightingMethod):
    """Auxiliaries first, then the target; options on :class:`PostTrainConfig`."""

    Config = PostTrainConfig
    counters = ("aux_epochs",)  # plain-Python state a checkpoint keeps
    distributed = True
    batchings = ("mixed", "sampled")
    target_may_vanish = True  # the auxiliaries' phase trains without the target, by design

    def __init__(self, **options):
        super().__init__(**options)
        # fixed when the run starts (from trainer.max_epochs when not set) and kept in its checkpoints, so a
        # resume with more epochs continues the same phases
        self.aux_epochs: int | None = self.cfg.aux_epochs

    def check_trainer(self, trainer) -> None:
        super().check_trainer(trainer)
        if self.aux_epochs is None:  # a fresh run; a resumed one has its own from the checkpoint
            self.aux_epochs = trainer.max_epochs // 2
        if self.aux_epochs >= trainer.max_epochs:
            raise ValueError(
                f"method.aux_epochs={self.aux_epochs} leaves no epoch of trainer.max_epochs={trainer.max_epochs} "
                "for the target"
            )

    def aux_phase(self, epoch: int) -> bool:
        return epoch < (self.aux_epochs or 0) and len(self.names) > 1

    def phase_weights(self, epoch: int) -> Tensor:
        """1 for the tasks the epoch trains (the auxiliaries, then the target), 0 for the others."""
        aux = self.aux_phase(epoch)
        return self.w.new_tensor([float((t == self.target) != aux) for t in self.names])

    def plan_epoch(self, data, generator) -> list[Step]:
        if self.aux_phase(data.epoch):  # the batched schedule without the target's batches
            plan = self.batched_plan(data, generator)
            kept = [{t: i for t, i in s.indices.items() if t != self.target} for s in plan]
            return finish([Step(indices) for indices in kept if indices])
        steps = self.target_plan(data, generator)
        if data.epoch == self.aux_epochs > 0:  # the first step of fine-tuning
            steps[0] = replace(steps[0], block="finetune", first_in_block=True)
        return steps

    def step(self, module, step: Step) -> None:
        self.w = self.phase_weights(module.current_epoch)
        if step.block == "finetune" and self.cfg.reset_optimizer:
            module.optimizers().optimizer.state.clear()  # fine-tuning starts from a fresh optimizer state
        module.backward_and_step(self.weighted_sum(module.task_losses(step.data)))
