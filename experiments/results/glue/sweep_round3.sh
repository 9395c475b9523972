#!/usr/bin/env bash
# Language, round three (experiments/results/glue/README.md): every method on the known-answer STS-B setting
# (experiment=glue_stsb_known: `binary` helps more than `noise`, measured alone), seeds 0-2, then seeds 3-4 for
# the oracle grid, single-task's partners, αVIL and DIW and the methods closest to the oracle on MultiMNIST at the
# small budget (ForkMerge, Auto-Lambda, HydaLearn, GradNorm). Two jobs at a time (two lanes), one thread each.
# Started again with the same command, every sweep skips the runs that finished. Checkpoints of finished runs are
# deleted (results.json keeps the record).
# Precision: `trainer=auto`, so it depends on the CPU, and each run's results.json records it; the report pairs each
# run with single-task at its own seed and precision. Single-task, αVIL, DIW and the oracle grid at seeds 0-2, and
# single-task at 3-4, ran on 2026-11-30 on a CPU with AVX512-BF16 (bf16). ForkMerge, Auto-Lambda, HydaLearn, uniform,
# uncertainty and GCS seeds 0-1 ran on 2026-12-07 on a CPU without it (float32; their single-task partners:
# runs/fp32/stsb_known). The rest ran on 2026-12-07/08 on a CPU with it again (bf16).
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/glue/runs}
S="python -m src.run -m experiment=glue_stsb_known"
clean() { find "$1" -name results.json -printf '%h\n' 2>/dev/null | while read -r d; do rm -rf "$d/checkpoints"; done; }
python -m experiments.stsb_known
lane() { $S method=$1 seed=$2 hydra.sweep.dir=$RUNS/$3; clean $RUNS/$3; }
# 1. every other method, seeds 0-2 (single-task, αVIL, DIW and the oracle: runs/stsb_known{,_oracle}/seeds012)
lane forkmerge,auto_lambda,hydalearn,gradnorm,post_train,slgrad 0,1,2 stsb_known/methods012_a &
lane uniform,uncertainty,gcs,upgrad 0,1,2 stsb_known/methods012_b
wait
lane pcgrad,ol_aux 0,1,2 stsb_known/methods012_c
wait
# 2. seeds 3-4: the oracle grid, αVIL, DIW and the four closest to the oracle on MultiMNIST (single-task: single34)
python -m src.run -m experiment=glue_stsb_known_oracle seed=3,4 hydra.sweep.dir=$RUNS/stsb_known_oracle/seeds34 &
lane alphavil,diw 3,4 stsb_known/seeds34_a
wait; clean $RUNS/stsb_known_oracle/seeds34
lane forkmerge,auto_lambda 3,4 stsb_known/seeds34_b &
lane hydalearn,gradnorm 3,4 stsb_known/seeds34_c
wait
