"""The run engine: protocol steps against the drivers, journaled, pausable, resumable.

``engine.Runner`` (the state machine and its exit paths), ``state`` (the states and
transitions as data), ``channel`` (the cell's source-measure channel: sign, sampling),
``steps`` (one executor per step kind), ``record`` (which samples are stored),
``status`` (the snapshot consoles and MQTT show), ``resume`` (continuing a journal).
"""
