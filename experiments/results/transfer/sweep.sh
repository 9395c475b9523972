#!/usr/bin/env bash
# The transfer report's runs at the small budget (each auxiliary as many examples per epoch as the target),
# beside experiments/results/budget/runs/small: SLGrad and GradNorm in the known-effect comparison, and
# uniform on mixed batches with the relatedness probe (callbacks=relatedness), 3 settings x 5 seeds each.
# Started again with the same command, every sweep skips the runs that finished.
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/budget/runs}
S="python -m src.run -m hydra/launcher=local_parallel experiment=known_effect"
$S method=slgrad,gradnorm hydra.sweep.dir=$RUNS/small/methods_new
$S method=uniform task.batching=mixed callbacks=relatedness hydra.sweep.dir=$RUNS/small/probe
