#!/usr/bin/env bash
# search=conditional and conditional_halving live on K = 4 (the K = 4 grid's settings), for the seeds given
# (default 0 1): each search retraces its replay on the committed grid (experiments/frontier.py), which gives the
# five seeds' figures; the live runs show the searches run end to end and cost what the replay says.
#   bash experiments/results/conditional/sweep_search.sh [seed ...]
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/conditional/runs}
for seed in ${*:-0 1}; do
  for strategy in conditional conditional_halving; do
    python -m src.search experiment=search_known task=multimnist_low_k4 search=$strategy \
      'search.space.weights=[0,0.3,1]' 'search.space.batching=[sampled]' seed=$seed \
      search.dir=$RUNS/k4_search/$strategy/seed$seed
    find $RUNS/k4_search -name checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null
  done
done
