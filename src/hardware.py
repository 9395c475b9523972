"""Hardware policy: the numeric precision a machine gets, the DDP strategy, and the cluster's plugins."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX): bf16 autocast pays there."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: no way to tell, so no
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: Any, accelerator: str) -> Any:
    """``auto``: ``bf16-mixed`` where the hardware computes bfloat16 (a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX), else ``32-true``. Any other value is Lightning's, unchanged."""
    if precision != "auto":
        return precision
    import torch

    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    # on a GPU, only hardware bf16 (Ampere and later): emulated bf16 (T4, V100) would train slower than float32
    fast = (
        torch.cuda.is_bf16_supported(including_emulation=False)
        if on_gpu
        else accelerator in ("auto", "cpu") and cpu_has_bf16()
    )
    resolved = "bf16-mixed" if fast else "32-true"
    log.info("trainer.precision=auto: %s (%s)", resolved, "GPU" if on_gpu else "CPU")
    return resolved


def ddp_strategy(name: str) -> str:
    """``ddp`` as ``ddp_find_unused_parameters_true``: a step may leave parameters out of its loss (the
    auxiliary heads in single-task training, every head but one in an αVIL block), which plain DDP rejects."""
    return {"ddp": "ddp_find_unused_parameters_true", "ddp_spawn": "ddp_spawn_find_unused_parameters_true"}.get(
        name, name
    )


def on_slurm() -> bool:
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return SLURMEnvironment.detect()


def cluster_plugins() -> list[Any] | None:
    """On Slurm, Lightning's environment without its SIGUSR1 auto-requeue.

    That requeue saves a checkpoint in the middle of an epoch and resumes from it, where a resume here is
    exact only at epoch boundaries (a method's per-epoch record, αVIL's blocks). Requeueing is left to
    the Slurm launcher (submitit, ``hydra.launcher.max_num_timeout``) and to Slurm's own preemption requeue;
    the requeued job runs in the same folder and ``ckpt_path=auto`` continues from its last.ckpt.
    """
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if on_slurm() else None


def end_process_group() -> None:
    """Destroy the DDP process group Lightning started (it leaves it open).

    Left open, gloo's threads are still joinable when the interpreter exits, and C++ aborts the process
    ("terminate called without an active exception", status -6) after a run that otherwise succeeded.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
