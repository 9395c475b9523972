"""Weight search with its whole cost counted: trials of :func:`src.train.train` on an Optuna study.

    python -m src.search task=multimnist_low_coarse search=halving
    python -m src.search debug=tiny search=grid                     # the fixed-weight oracle as one command
    python -m src.search task=glue_stsb model=minilm search=tpe search.max_runs=2

A trial is one point of the space (each auxiliary's weight, 0 dropping it; the batching; other options) run as
``python -m src.run method=static method.weights=... task.auxiliaries=... task.batching=...`` would run it, in
its own folder under ``<search>/trials/``. Every trial is a prefix of the full run: the learning-rate schedule
is laid over the full length (``model.lr_schedule.epochs``), a trial stopped at a rung keeps its last.ckpt, and
a trial advanced further continues from it, so the survivor is the finished model. A strategy decides which
trials go how far; the trials count what they spent.

Two sides, and nothing imported here, so that either can be imported alone:

- **the strategies** (pure: no torch, no Lightning; the live search and ``experiments/frontier.py``'s replays both
  import them): :mod:`.strategies` (the algorithms on the ``Trials`` interface), :mod:`.space` (the points a search
  may visit), :mod:`.registry` (each strategy's options, label, pool and Optuna sampler and pruner;
  ``run_strategy``), :mod:`.replay` (trials read from recorded runs);
- **the live search**: :mod:`.live` (``LiveTrials``: trials that train, and which errors stop the search),
  :mod:`.folder` (a trial's folder: its files, state and cost), :mod:`.study` (every use of Optuna's storage),
  :mod:`.compose` (a trial's config), :mod:`.command` (the command: options, the folder's identity, search.json),
  ``__main__`` (Hydra's entry point). The locks are :mod:`src.lock`'s.

Several processes started with the same command (or on one ``search.storage``) share the work: a trial's folder is
locked while it trains, and each rung waits for the trials the others are finishing.
"""
