#!/usr/bin/env bash
# The contradicting control (experiment=glue_stsb_contradicting: 5 − score through the target's own head) alone
# beside the low-resource STS-B target, at fixed weights 0.3 and 1 on sampled batches; then every method beside
# `binary` and `contra`. Seeds 0-2, float32 (the single-task runs it is paired with, runs/fp32/stsb_known, are
# float32 too). One job, one thread; started again, the finished runs are kept.
#   bash experiments/results/glue/sweep_contradicting.sh
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/glue/runs}
python -m experiments.stsb_known
python -m src.run -m experiment=glue_stsb_contradicting 'task.auxiliaries=[contra]' method=static \
  method.aux_weight=0.3,1 task.batching=sampled trainer.precision=32-true seed=0,1,2 \
  hydra.sweep.dir=$RUNS/stsb_contradicting/alone
# then every method on target + binary + contra (the contradicting control beside the helpful auxiliary), one seed at
# a time so that a stopped sweep leaves whole seeds
for seed in 0 1 2; do
  python -m src.run -m experiment=glue_stsb_contradicting \
    method=uniform,alphavil,forkmerge,auto_lambda,hydalearn,gradnorm seed=$seed trainer.precision=32-true \
    hydra.sweep.dir=$RUNS/stsb_contradicting/methods
done
find $RUNS/stsb_contradicting -name checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null
