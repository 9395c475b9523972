#!/usr/bin/env bash
# αVIL on the K = 4 known-effect setting (experiment=known_effect, 20 epochs, small budget), 5 seeds, in each
# delta's own basis (the default) and in the target's (method.delta_basis=target): docs/methods.md, "Why αVIL
# floors helpful auxiliaries as K grows". One job at a time, one thread; finished jobs are kept when started again.
. "$(dirname "$0")/../../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/budget/alphavil_basis/runs}
python -m src.run -m experiment=known_effect task=multimnist_low_k4 method=alphavil method.delta_basis=own,target \
  seed=0,1,2,3,4 trainer.enable_model_summary=false hydra.sweep.dir=$RUNS/k4
find $RUNS -name checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null
