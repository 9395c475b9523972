#!/usr/bin/env bash
# Weight search on the known-effect settings (experiments/results/search/README.md). One job at a time, one
# thread. Started again with the same command, every search continues where it stopped (finished trials are
# kept). Checkpoints of finished searches are deleted (results.json, search.json and the study stay).
set -uo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 ALPHAVIL_DATA_DIR=${ALPHAVIL_DATA_DIR:-../shared/data}
RUNS=${RUNS:-experiments/results/search/runs}
S="python -m src.search experiment=search_known"
clean() { find "$1" -name checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null; }
# the K = 4 setting's oracle: the exhaustive grid {0, 0.3, 1}^4 on sampled batches, 81 runs a seed
for seed in 0 1 2 3 4; do
  $S task=multimnist_low_k4 search=grid 'search.space.weights=[0,0.3,1]' 'search.space.batching=[sampled]' \
    seed=$seed search.dir=$RUNS/k4_grid/seed$seed && clean $RUNS/k4_grid/seed$seed
done
