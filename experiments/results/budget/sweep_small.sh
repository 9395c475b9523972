#!/usr/bin/env bash
# The known-effect comparison at the small budget (task.budget=equal), dev split at its default (6,000):
# the fixed-weight grid under both batchings, then every learned method. Two jobs at a time, one thread each.
# Started again with the same command, every sweep skips the runs that finished (their results.json stays).
. "$(dirname "$0")/../preamble.sh"  # set -uo pipefail, the repository root, one thread
RUNS=${RUNS:-experiments/results/budget/runs}/small
python -m src.run -m experiment=oracle hydra/launcher=local_parallel hydra.sweep.dir=$RUNS/oracle
python -m src.run -m experiment=known_effect hydra/launcher=local_parallel hydra.sweep.dir=$RUNS/methods
python -m src.run -m experiment=oracle_mixed hydra/launcher=local_parallel hydra.sweep.dir=$RUNS/oracle_mixed
