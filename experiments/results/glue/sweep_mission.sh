#!/usr/bin/env bash
# The mission's own command over seeds (issue 43, item 4): `python -m src.run task=glue_rte method=alphavil
# model=minilm` against single-task, seeds 0-4, as the command runs it (`trainer=auto`: bf16 where the CPU has
# AVX512-BF16 or AMX, float32 elsewhere; each run's results.json records which). Then the command itself (αVIL) at
# seed 0 again at float32 (`trainer.precision=32-true`), for its time on a CPU without bf16. Two lanes, one thread
# each: seeds 0, 2, 4 and seeds 1, 3, each seed's pair in turn so that a stopped sweep leaves whole pairs. Started
# again, each lane skips the runs that finished. Checkpoints of finished runs are deleted (results.json keeps them).
#   bash experiments/results/glue/sweep_mission.sh
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/glue/runs}
clean() { find "$1" -name results.json -printf '%h\n' 2>/dev/null | while read -r d; do rm -rf "$d/checkpoints"; done; }
lane() {  # seeds, folder, extra overrides
  python -m src.run -m task=glue_rte model=minilm seed=$1 method=single_task,alphavil \
    trainer.enable_progress_bar=false hydra.sweep.dir=$RUNS/mission5/$2 "${@:3}"
  clean $RUNS/mission5/$2
}
lane 0,2,4 auto_a &
lane 1,3 auto_b
python -m src.run -m task=glue_rte model=minilm seed=0 method=alphavil trainer.precision=32-true \
  trainer.enable_progress_bar=false hydra.sweep.dir=$RUNS/mission5/fp32
clean $RUNS/mission5/fp32
wait
