#!/usr/bin/env bash
# GLUE with MiniLM on two CPU cores (experiments/results/glue/README.md): single-task at full data, the
# low-resource comparisons at one budget (RTE with MRPC and STS-B; the known-answer STS-B setting), and float32
# against bf16. Two jobs at a time, one thread each. Started again with the same command, every sweep skips
# the runs that finished (their results.json stays). Seeds 0-2 first, then 3-4 in folders of their own (a
# sweep's job folders are numbered in its order, so a longer seed list would not find the first runs again).
set -uo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 ALPHAVIL_DATA_DIR=${ALPHAVIL_DATA_DIR:-../shared/data}
RUNS=${RUNS:-experiments/results/glue/runs}
S="python -m src.run -m hydra/launcher=local_parallel"
python -m experiments.stsb_known
for seeds in 0,1,2 3,4; do
  dir=seeds${seeds//,/}
  $S experiment=glue_single seed=$seeds hydra.sweep.dir=$RUNS/single/$dir
  $S experiment=glue_stsb_known seed=$seeds hydra.sweep.dir=$RUNS/stsb_known/$dir
  $S experiment=glue_stsb_known_oracle seed=$seeds hydra.sweep.dir=$RUNS/stsb_known_oracle/$dir
  $S experiment=glue_low seed=$seeds hydra.sweep.dir=$RUNS/low/$dir
  $S experiment=glue_low_oracle seed=$seeds hydra.sweep.dir=$RUNS/low_oracle/$dir
  # float32 against the bf16 single-task runs above (the low-resource targets), seeds 0-2 only
  if [ "$seeds" = 0,1,2 ]; then
    F="method=single_task trainer.precision=32-true seed=$seeds"
    $S experiment=glue_low $F hydra.sweep.dir=$RUNS/fp32/low
    $S experiment=glue_stsb_known $F hydra.sweep.dir=$RUNS/fp32/stsb_known
  fi
done
