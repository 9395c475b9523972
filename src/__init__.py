"""Target-task multitask learning with learned task weights (αVIL, DIW, uniform, single-task)."""
