#!/usr/bin/env bash
# Weight search on the known-effect settings (experiments/results/search/README.md). One job at a time, one
# thread. Started again with the same command, every search continues where it stopped (finished trials are
# kept). Checkpoints of finished searches are deleted (results.json, search.json and the study stay).
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/search/runs}
S="python -m src.search experiment=search_known"
clean() { find "$1" -name checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null; }
# the K = 4 setting's oracle: the exhaustive grid {0, 0.3, 1}^4 on sampled batches, 81 runs a seed
for seed in 0 1 2 3 4; do
  $S task=multimnist_low_k4 search=grid 'search.space.weights=[0,0.3,1]' 'search.space.batching=[sampled]' \
    seed=$seed search.dir=$RUNS/k4_grid/seed$seed && clean $RUNS/k4_grid/seed$seed
done
# live searches on K = 4 at about three runs or less
K4="task=multimnist_low_k4 'search.space.weights=[0,0.3,1]' 'search.space.batching=[sampled]'"
for seed in 0 1 2 3 4; do
  eval $S $K4 search=tpe search.max_runs=3 seed=$seed search.dir=$RUNS/k4_tpe/seed$seed
  eval $S $K4 search=halving search.n_points=20 seed=$seed search.dir=$RUNS/k4_halving20/seed$seed
  eval $S $K4 search=regmix search.proxy_epochs=2 seed=$seed search.dir=$RUNS/k4_regmix/seed$seed
  eval $S $K4 search=hybrid seed=$seed search.dir=$RUNS/k4_hybrid/seed$seed
done
clean $RUNS
# every learned method on the K = 4 setting, one run each (the frontier's x = 1): seeds 0-2, then 3-4
METHODS=single_task,uniform,pcgrad,upgrad,gradnorm,uncertainty,gcs,ol_aux,hydalearn,auto_lambda,forkmerge,alphavil,diw,post_train,slgrad
k4_methods() {
  python -m src.run -m experiment=known_effect task=multimnist_low_k4 method=$METHODS seed=$2 \
    hydra.sweep.dir=$RUNS/k4_methods/seeds$1
  clean $RUNS/k4_methods
}
k4_methods 012 0,1,2
# live searches: successive halving on the one-auxiliary settings and the two-auxiliary one (their grid is
# committed in experiments/results/budget/runs/small: a live search must retrace its replay exactly)
for seed in 0 1 2 3 4; do
  for task in multimnist_low_coarse multimnist_low_right multimnist_low_mixed; do
    $S task=$task search=halving seed=$seed search.dir=$RUNS/halving/$task/seed$seed && clean $RUNS/halving/$task/seed$seed
  done
  [ $seed = 2 ] && k4_methods 34 3,4
done
