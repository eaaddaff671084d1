"""Running heatcycler as a service on the rig: systemd notify and watchdog, what happens
at boot (resume an interrupted run per the rig's policy), ``doctor`` and ``archive``."""
