#!/usr/bin/env bash
# The three one-auxiliary known-effect settings (left_coarse helps, right hurts, both) on task.batching=matched:
# every method that takes mixed batches, uniform on it as the control, 5 seeds, at the small budget
# (experiment=known_effect: 20 epochs, batch 64, Adam 1e-3 as every other row). Seed by seed, the quick methods
# first, then DIW and SLGrad; one job at a time, one thread. Each seed in its own folder, so a sweep started again
# skips what finished.
#   bash experiments/results/budget/matched/sweep_one_aux.sh [seeds]     (default 0 1 2 3 4)
. "$(dirname "$0")/../../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/budget/matched/runs}
TASKS=multimnist_low_coarse,multimnist_low_right,multimnist_low_mixed
sweep() {  # sweep SEED METHODS FOLDER
  python -m src.run -m experiment=known_effect task=$TASKS task.batching=matched method=$2 seed=$1 \
    trainer.enable_model_summary=false hydra.sweep.dir=$RUNS/one_aux/$3
  find $RUNS -name checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null
}
for seed in ${1:-0 1 2 3 4}; do
  sweep $seed uniform,uncertainty,pcgrad,upgrad,gcs,ol_aux,auto_lambda,hydalearn,gradnorm,post_train seed$seed
done
for seed in ${1:-0 1 2 3 4}; do
  sweep $seed diw,slgrad seed${seed}_dev_methods
done
