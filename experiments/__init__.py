"""Experiment configs (conf/experiment), the report, and the cost benchmark."""
