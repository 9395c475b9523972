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
single() { $S experiment=glue_single seed=$1 hydra.sweep.dir=$RUNS/single/$2; }
compare() {
  $S experiment=glue_stsb_known seed=$1 hydra.sweep.dir=$RUNS/stsb_known/$2
  $S experiment=glue_stsb_known_oracle seed=$1 hydra.sweep.dir=$RUNS/stsb_known_oracle/$2
  $S experiment=glue_low seed=$1 hydra.sweep.dir=$RUNS/low/$2
  $S experiment=glue_low_oracle seed=$1 hydra.sweep.dir=$RUNS/low_oracle/$2
}
single 0,1,2 seeds012
compare 0,1,2 seeds012
# float32 against the bf16 single-task runs of the low-resource targets above, seeds 0-2
F="method=single_task trainer.precision=32-true seed=0,1,2"
$S experiment=glue_low $F hydra.sweep.dir=$RUNS/fp32/low
$S experiment=glue_stsb_known $F hydra.sweep.dir=$RUNS/fp32/stsb_known
# RTE lands below the published range: is it truncation (12% of RTE's pairs exceed 128 tokens) or pooling?
P="experiment=glue_single task=glue_rte seed=0,1,2"
$S $P model.max_length=256 hydra.sweep.dir=$RUNS/rte_probe/max_length256
$S $P model.net.pooling=cls hydra.sweep.dir=$RUNS/rte_probe/pooling_cls
compare 3,4 seeds34
single 3,4 seeds34
