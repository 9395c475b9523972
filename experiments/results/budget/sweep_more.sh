#!/usr/bin/env bash
# After sweep_small.sh: αVIL's ablation at the small budget, then the small dev split (200) and the large budget
# (half of each auxiliary per epoch), each with the fixed-weight grid under both batchings, αVIL and the three
# best baselines of the small budget (ForkMerge, Auto-Lambda, HydaLearn: best mean Δ to the oracle there).
# Started again with the same command, every sweep skips the runs that finished.
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/budget/runs}
S="python -m src.run -m hydra/launcher=local_parallel"
A="$S experiment=known_effect method=alphavil"
$A method.alpha_steps=20 method.alpha_lr=0.2 hydra.sweep.dir=$RUNS/ablation/alpha_steps20_lr0.2
$A method.alpha_domain=simplex hydra.sweep.dir=$RUNS/ablation/simplex
$A method.w_min=0 hydra.sweep.dir=$RUNS/ablation/w_min0
$A method.reset_optimizer=false hydra.sweep.dir=$RUNS/ablation/no_optimizer_reset
$A method.alpha_init=ones method.weight_update=additive method.w_min=0 hydra.sweep.dir=$RUNS/ablation/design_sketch
BEST=single_task,alphavil,forkmerge,auto_lambda,hydalearn
D="task.dev_examples=200"
$S experiment=oracle $D hydra.sweep.dir=$RUNS/small_dev200/oracle
$S experiment=known_effect $D method=$BEST hydra.sweep.dir=$RUNS/small_dev200/methods
$S experiment=oracle_mixed $D hydra.sweep.dir=$RUNS/small_dev200/oracle_mixed
L="task.budget=fraction"
$S experiment=oracle $L hydra.sweep.dir=$RUNS/large/oracle
$S experiment=known_effect $L method=alphavil,forkmerge,auto_lambda,hydalearn hydra.sweep.dir=$RUNS/large/methods
# The large budget's oracle on the two-auxiliary setting is capped to fit the session: uniform and the small
# budget's oracle weighting (left_coarse 3, right 0), both on sampled batches (10 runs, not the 90 of the full
# 3 x 3 grid under both batchings).
$S experiment=oracle_mixed $L task.batching=sampled \
  'method.weights={left_coarse:1,right:1},{left_coarse:3,right:0}' hydra.sweep.dir=$RUNS/large/oracle_mixed
