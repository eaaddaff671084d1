"""What the operator sees of a run: reports with plots, comparisons, BDF export, run lists.

``results`` (a run's findings from its step records: pure, also used by ``runs.list_runs``),
``locate`` (RUN argument → journal), ``summary`` (summary.json/.md), ``decimate`` (min/max
envelopes for plotting long traces), ``plots`` (the figures), ``report``, ``compare``,
``export`` (BDF CSV/Parquet + metadata sidecar).
"""
