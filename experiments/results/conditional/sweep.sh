#!/usr/bin/env bash
# Loss-conditional training (method=conditional, search=conditional) on the known-effect settings, against the
# committed grids of experiments/results/search/ (K = 4) and experiments/results/budget/ (one auxiliary).
# One job at a time, one thread. Started again, finished runs are kept (each run has its own folder).
#   bash experiments/results/conditional/sweep.sh [part ...]
# parts: k4 k4_control one_aux (the defaults and the control, 5 seeds), ablations (K = 4, seeds 0-2: one option
# changed each), stsb (STS-B at 1,000 examples
# beside MRPC and RTE, seeds 0-2, MiniLM)
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/conditional/runs}
R="python -m src.run experiment=known_effect trainer.enable_model_summary=false task.batching=sampled method=conditional"
K4="task=multimnist_low_k4 method.space.weights=[0,0.3,1]"
ONE="method.space.weights=[0,0.1,0.3,1,3]"
clean() { find "$1" -name checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null; }
run() {  # run FOLDER OVERRIDES...: one run in its folder, skipped when it finished
  local dir=$1; shift
  [ -f "$dir/results.json" ] && return 0
  $R "$@" hydra.run.dir="$dir" && clean "$dir"
}
parts=${*:-k4 k4_control one_aux ablations stsb}
for part in $parts; do
  for seed in 0 1 2 3 4; do
    case $part in
      k4) run $RUNS/k4/seed$seed $K4 seed=$seed ;;
      k4_control) run $RUNS/k4_control/seed$seed $K4 model.net.condition.enabled=false seed=$seed ;;
      one_aux)
        for task in multimnist_low_coarse multimnist_low_right multimnist_low_mixed; do
          run $RUNS/$task/seed$seed task=$task $ONE seed=$seed
        done ;;
      ablations)
        [ $seed -le 2 ] || continue
        run $RUNS/ablations/whole_dev/seed$seed $K4 method.score_examples=null seed=$seed
        run $RUNS/ablations/hidden256/seed$seed $K4 model.net.condition.hidden=256 seed=$seed
        run $RUNS/ablations/per_batch/seed$seed $K4 method.per=batch seed=$seed
        run $RUNS/ablations/fc_only/seed$seed $K4 'model.net.condition.sites=[fc]' seed=$seed ;;
      stsb)
        [ $seed -le 2 ] && [ ! -f $RUNS/glue_low_stsb/seed$seed/results.json ] || continue
        python -m src.run experiment=glue_low_stsb method=conditional task.batching=sampled \
          'method.space.weights=[0,1]' seed=$seed hydra.run.dir=$RUNS/glue_low_stsb/seed$seed \
          && clean $RUNS/glue_low_stsb/seed$seed ;;
    esac
  done
done
