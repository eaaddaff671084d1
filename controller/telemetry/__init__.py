"""Telemetry and remote control over MQTT.

The journal is the single source of truth; the publisher reads it from its last
acknowledged position (store-and-forward) and publishes status, telemetry batches and
events under ``<prefix>/<rig>/``. Remote commands arrive on ``<prefix>/<rig>/cmd/+`` and
reach the run only through :class:`controller.control.RunControl`.

Entry point for the runner: :class:`controller.telemetry.service.Telemetry`.
Modules: ``settings`` (URL, credentials, TLS), ``topics``, ``payloads``, ``feed`` (journal
positions), ``publisher`` (the aiomqtt client and its reconnect loop), ``commands``,
``homeassistant`` (discovery), ``service`` (the runner's integration point), ``view``
(``heatcycler watch``).
"""
