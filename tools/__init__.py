"""Developer tools, run from a clone (``python -m tools.benchmark``, ``python -m tools.device_check OUT``,
``python -m tools.checkpoint_cost``): measurements of the app, not part of it, so the installed package
(pyproject's package list names only ``maxclass_lightning``) carries none of them."""
