#!/usr/bin/env bash
# Language, round three, item 3 (experiments/results/glue/README.md): every mixed-batch method but SLGrad on the low-resource
# STS-B setting at equal steps (`task.batching=matched`: every step a batch of every task, each task's budget spread
# over the steps, so the epoch takes the steps of `sampled`, 189 a task, 567 in all), seeds 0-2, beside the same
# methods on mixed batches (runs/low_stsb/methods012_*, 189 steps) and the oracle on sampled ones. Uniform first: it
# is the reference every method is read against. Two lanes, one thread each; `trainer=auto` (each run's
# results.json records its precision, and the report pairs it with single-task at its own). Started again, each
# lane skips the runs that finished. Checkpoints of finished runs are deleted (results.json keeps the record).
#   bash experiments/results/glue/sweep_matched.sh
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/glue/runs}
clean() { find "$1" -name results.json -printf '%h\n' 2>/dev/null | while read -r d; do rm -rf "$d/checkpoints"; done; }
lane() {  # methods, folder
  python -m src.run -m experiment=glue_low_stsb task.batching=matched method=$1 seed=0,1,2 \
    trainer.enable_progress_bar=false hydra.sweep.dir=$RUNS/low_stsb/$2
  clean $RUNS/low_stsb/$2
}
# Each lane takes its methods in order, seeds 0-2 of one before the next, the quicker ones first (their mixed-batch
# runs took 190-560 s; HydaLearn and Auto-Lambda 560-1,330 s), so a stopped sweep leaves whole methods. SLGrad is
# left out: vmap cannot trace MiniLM, and its per-example gradients one example at a time took 18 min an epoch at bf16
# on mixed batches (runs/stsb_known/methods012_a, round three).
lane uniform,post_train,uncertainty,pcgrad,gcs,hydalearn matched012_a &
lane diw,upgrad,auto_lambda,ol_aux,gradnorm matched012_b
wait
