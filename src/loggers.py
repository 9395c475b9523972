"""Lightning's CSV logger, for runs that continue: a run resumed in its folder (a search's trial promoted to its next
rung, a preempted job requeued) appends to its ``csv/metrics.csv`` instead of starting it again, so the file covers
every segment of the run. Lightning's own writer deletes the file when a run starts in a folder that holds one."""

from __future__ import annotations

import csv
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


class _ContinuingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        """Keep an earlier segment's rows: the file's columns are this writer's first (a new metric widens it)."""
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])


class ContinuingCSVLogger(CSVLogger):
    """:class:`~pytorch_lightning.loggers.CSVLogger` whose metrics.csv a resumed run appends to."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment
