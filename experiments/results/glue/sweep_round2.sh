#!/usr/bin/env bash
# Language, round two (experiments/results/glue/README.md): the candidate harmful control's effect alone, the
# mission's own command as written, then more methods on the low-resource STS-B setting. One job at a time, one
# thread. Started again with the same command, every sweep skips the runs that finished. Checkpoints of
# finished runs are deleted (results.json keeps the record).
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/glue/runs}
S="python -m src.run -m"
clean() { find "$1" -name results.json -printf '%h\n' 2>/dev/null | while read -r d; do rm -rf "$d/checkpoints"; done; }
python -m experiments.stsb_known
# 1. inverted (5 − score) alone beside the known-answer target, against single-task (seeds 0-2: runs/stsb_known)
$S experiment=glue_stsb_harmful 'task.auxiliaries=[inverted]' method=uniform task.batching=sampled seed=0,1,2,3,4 \
  hydra.sweep.dir=$RUNS/stsb_harmful/inverted_alone; clean $RUNS/stsb_harmful/inverted_alone
$S experiment=glue_stsb_known method=single_task seed=3,4 hydra.sweep.dir=$RUNS/stsb_known/single34
clean $RUNS/stsb_known/single34
# 2. the mission's command as the README writes it (seed 0), in a folder of its own
python -m src.run task=glue_rte method=alphavil model=minilm trainer.enable_progress_bar=false \
  hydra.run.dir=$RUNS/mission/alphavil_seed0; clean $RUNS/mission
python -m src.run task=glue_rte method=single_task model=minilm trainer.enable_progress_bar=false \
  hydra.run.dir=$RUNS/mission/single_task_seed0; clean $RUNS/mission
# 3. more methods on the low-resource STS-B setting, seeds 0-2
$S experiment=glue_low_stsb method=uniform,uncertainty,gcs,upgrad seed=0,1,2 \
  hydra.sweep.dir=$RUNS/low_stsb/methods012_b; clean $RUNS/low_stsb/methods012_b
$S experiment=glue_low_stsb method=pcgrad,ol_aux,post_train seed=0,1,2 \
  hydra.sweep.dir=$RUNS/low_stsb/methods012_c; clean $RUNS/low_stsb/methods012_c
$S experiment=glue_low_stsb_oracle task.batching=mixed 'method.weights={mrpc:0},{rte:0}' seed=0,1,2 \
  hydra.sweep.dir=$RUNS/low_stsb_oracle/mixed012; clean $RUNS/low_stsb_oracle/mixed012
