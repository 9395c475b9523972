#!/usr/bin/env bash
# After seed 0 (sweep.sh): the methods that take minutes first, seed by seed, then DIW and SLGrad (ten minutes a
# run on one thread here). Same settings as sweep.sh; each seed in its own folder, so a started-again sweep skips
# what finished.
#   bash experiments/results/budget/matched/sweep_rest.sh
. "$(dirname "$0")/../../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/budget/matched/runs}
sweep() {  # sweep SEED METHODS FOLDER
  python -m src.run -m experiment=known_effect task=multimnist_low_k4 task.batching=matched method=$2 seed=$1 \
    trainer.enable_model_summary=false hydra.sweep.dir=$RUNS/k4/$3
  find $RUNS -name checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null
}
for seed in 1 2 3 4; do
  sweep $seed uniform,uncertainty,pcgrad,upgrad,gcs,ol_aux,auto_lambda,hydalearn,gradnorm,post_train seed$seed
done
for seed in 1 2 3 4; do
  sweep $seed diw,slgrad seed${seed}_dev_methods
done
