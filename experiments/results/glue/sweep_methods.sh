#!/usr/bin/env bash
# Every method at one budget on the low-resource STS-B setting (experiment=glue_low_stsb: STS-B at 1,000
# examples beside MRPC and RTE), beside the runs of sweep.sh (single-task, αVIL, DIW and the sampled oracle,
# seeds 0-2). One job at a time, one thread. Started again with the same command, every sweep skips the
# runs that finished. Checkpoints of finished runs are deleted (each is ~0.3 GB; results.json keeps the record).
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/glue/runs}
S="python -m src.run -m"  # one job at a time: the other core runs experiments/results/search/sweep.sh
clean() { find "$1" -name results.json -printf '%h\n' 2>/dev/null | while read -r d; do rm -rf "$d/checkpoints"; done; }
# ordered by closeness to the oracle at the small MultiMNIST budget (experiments/results/budget/small)
$S experiment=glue_low_stsb method=forkmerge,auto_lambda,hydalearn,gradnorm seed=0,1,2 \
  hydra.sweep.dir=$RUNS/low_stsb/methods012_a; clean $RUNS/low_stsb/methods012_a
$S experiment=glue_low_stsb method=uniform,uncertainty,gcs,upgrad seed=0,1,2 \
  hydra.sweep.dir=$RUNS/low_stsb/methods012_b; clean $RUNS/low_stsb/methods012_b
$S experiment=glue_low_stsb_oracle task.batching=mixed 'method.weights={mrpc:0},{rte:0}' seed=0,1,2 \
  hydra.sweep.dir=$RUNS/low_stsb_oracle/mixed012; clean $RUNS/low_stsb_oracle/mixed012
$S experiment=glue_low_stsb method=post_train,slgrad,ol_aux,pcgrad seed=0,1,2 \
  hydra.sweep.dir=$RUNS/low_stsb/methods012_c; clean $RUNS/low_stsb/methods012_c
