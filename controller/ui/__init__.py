"""What the operator sees of a run: the live console, reports with plots, comparisons,
BDF export, run lists.

``console`` (the live console and plain log of ``heatcycler run``), ``results`` (a run's
findings from its step records: pure, also used by ``runs.list_runs``), ``locate`` (RUN
argument → journal), ``summary`` (summary.json/.md), ``plots`` (the figures, min/max
envelopes for long traces), ``report``, ``compare``, ``export`` (BDF CSV/Parquet +
metadata sidecar).
"""
