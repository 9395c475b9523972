"""Task-weighting methods: one file each, on :class:`~src.methods.base.WeightingMethod`; their options (torch-free,
so that composing a config imports no method's code) in :mod:`src.methods.options`."""
