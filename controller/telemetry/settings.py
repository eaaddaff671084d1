"""Which broker, as whom, over what: the rig's ``mqtt:`` section, ``--mqtt URL`` and secrets.

Credentials and TLS files are read once, when the run starts, so that a wrong path is a
user mistake reported before anything is energised, not a reconnect loop at 3 a.m. The
password never appears in a repr, a log line or a notice.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from controller.problems import UserError
from controller.rig import MqttConfig, RigConfig

#: Said once when a run has no broker.
JOURNAL_ONLY = (
    "telemetry is journal-only: no MQTT broker configured "
    "(add an mqtt: section to the rig file or pass --mqtt URL)"
)

#: ``--mqtt off`` (or ``none``) turns MQTT off for one run even if the rig file has a broker.
OFF = frozenset({"off", "none"})


@dataclass(frozen=True)
class Broker:
    """Everything needed to open a connection (secrets resolved, files checked)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive: int = 30
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        """The broker as a URL, safe to print (never the password)."""
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


def parse_url(url: str) -> tuple[bool, str, int, str | None]:
    """``mqtt[s]://[user@]host[:port]`` -> (tls, host, port, username)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UserError(f"bad MQTT URL {url!r}: {exc}", "e.g. mqtt://broker.lab:1883") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise UserError(
            f"bad MQTT URL {url!r}",
            "write mqtt://host:1883 (plain) or mqtts://host:8883 (TLS)",
        )
    if parts.password:
        raise UserError(
            "the MQTT URL must not carry a password",
            "put it in a file (mqtt.password_file) or an environment variable (mqtt.password_env)",
        )
    if parts.path not in ("", "/") or parts.query:
        raise UserError(f"bad MQTT URL {url!r}: no path or query expected", "mqtt://host:port")
    tls = parts.scheme == "mqtts"
    user = unquote(parts.username) if parts.username else None
    return tls, parts.hostname, port or (8883 if tls else 1883), user


def mqtt_config(rig: RigConfig, override: str | None = None) -> MqttConfig | None:
    """The broker settings for a run: the rig file's, with ``--mqtt URL`` taking precedence.

    ``None`` means journal-only (no broker configured, or ``--mqtt off``).
    """
    if override is None:
        return rig.mqtt
    if override.strip().lower() in OFF:
        return None
    parse_url(override)  # located, friendly error first
    base = rig.mqtt.model_dump() if rig.mqtt is not None else {}
    try:
        return MqttConfig.model_validate({**base, "url": override})
    except ValidationError as exc:
        first = exc.errors()[0]
        hint = str((first.get("ctx") or {}).get("hint", "e.g. mqtt://broker.lab:1883"))
        raise UserError(f"--mqtt {override}: {first['msg']}", hint) from None


def read_password(cfg: MqttConfig) -> str | None:
    """The password from ``password_file`` or ``password_env`` (trailing newline dropped)."""
    if cfg.password_file is not None:
        path = Path(cfg.password_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(
                f"cannot read the MQTT password file {path}: {exc.strerror}",
                "check mqtt.password_file in the rig file (readable by the controller's user)",
            ) from None
        password = text.rstrip("\r\n")
        if not password:
            raise UserError(f"the MQTT password file {path} is empty", "write the password in it")
        return password
    if cfg.password_env is not None:
        value = os.environ.get(cfg.password_env)
        if not value:
            raise UserError(
                f"the environment variable {cfg.password_env} (mqtt.password_env) is not set",
                f"export {cfg.password_env}=… in the service's environment file",
            )
        return value
    return None


def tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    """A verifying TLS context: the CA file (or the system's CAs), optional client cert."""
    try:
        ctx = ssl.create_default_context(
            cafile=str(Path(cfg.ca_file).expanduser()) if cfg.ca_file else None
        )
        if cfg.cert_file is not None:
            ctx.load_cert_chain(
                str(Path(cfg.cert_file).expanduser()),
                str(Path(cfg.key_file).expanduser()) if cfg.key_file else None,
            )
    except FileNotFoundError as exc:
        raise UserError(
            f"MQTT TLS file not found: {exc.filename}",
            "check mqtt.ca_file / mqtt.cert_file / mqtt.key_file in the rig file",
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise UserError(
            f"cannot load the MQTT TLS files: {exc}",
            "ca_file must be a PEM CA bundle; cert_file/key_file a PEM certificate and its key",
        ) from None
    return ctx


def broker_from(cfg: MqttConfig) -> Broker:
    """Resolve secrets and TLS files; raises :class:`UserError` on any mistake."""
    tls, host, port, url_user = parse_url(cfg.url)
    if not tls and (cfg.ca_file or cfg.cert_file):
        raise UserError(
            f"mqtt: TLS files given but the URL {cfg.url} is plain mqtt://",
            "use mqtts://host:8883 to connect over TLS",
        )
    username = cfg.username or url_user
    password = read_password(cfg)
    if password is not None and username is None:
        raise UserError("mqtt: a password without a username", "set mqtt.username")
    return Broker(
        host=host,
        port=port,
        tls=tls,
        username=username,
        password=password,
        keepalive=cfg.keepalive,
        tls_context=tls_context(cfg) if tls else None,
    )
