"""Bootstrap intervals for evaluation reports: the implementation is :mod:`chatbot.bootstrap`,
shared with the arena's ratings; this module keeps the evaluation's import path."""

from chatbot.bootstrap import (  # noqa: F401 (re-exported)
    DEFAULT_LEVEL,
    DEFAULT_ROUNDS,
    Interval,
    PairedDifference,
    Statistic,
    bootstrap_interval,
    mean_statistic,
    paired_bootstrap,
    percentile_interval,
    resample_indices,
)
