#!/usr/bin/env bash
# Every method that takes mixed batches, again on task.batching=matched (every task in each step, at sampled
# batching's optimizer steps and examples), with uniform on it as the control: the K = 4 known-effect setting at
# the small budget (experiment=known_effect: 20 epochs, batch 64), 5 seeds, one job at a time, one thread. The
# learning rate is the fixed weightings' (model.optimizer.lr=1e-3: no method got a tuning budget, as none did).
# Started again, finished runs are kept (a multirun's finished jobs are skipped).
#   bash experiments/results/budget/matched/sweep.sh [seeds]     (seeds: a Hydra list, default 0,1,2,3,4)
. "$(dirname "$0")/../../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/budget/matched/runs}
METHODS=uniform,uncertainty,pcgrad,upgrad,gcs,ol_aux,auto_lambda,hydalearn,gradnorm,diw,slgrad,post_train
for seed in ${1:-0 1 2 3 4}; do
  python -m src.run -m experiment=known_effect task=multimnist_low_k4 task.batching=matched method=$METHODS \
    seed=$seed trainer.enable_model_summary=false hydra.sweep.dir=$RUNS/k4/seed$seed
  find $RUNS -name checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null
done
