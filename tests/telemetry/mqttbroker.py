"""A real Mosquitto for the tests: config in a temp dir, a free port, stop and restart.

``Mosquitto.start()`` writes the config, runs ``mosquitto -c`` and waits until the port
accepts connections; ``stop()`` ends the process (SIGTERM: it saves its persistence
file, as a broker being restarted by systemd would); ``start()`` again brings the same
broker back on the same port — an outage as the rigs see it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "mosquitto"


def require_mosquitto() -> None:
    import pytest

    if not Path(MOSQUITTO).exists():
        pytest.fail(
            "mosquitto is not installed: `sudo apt-get install mosquitto` "
            "(or deselect with -m 'not mqtt')"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > end:
                raise TimeoutError(f"nothing listens on port {port}") from None
            time.sleep(0.02)


def user_line() -> str:
    """Run as root (CI containers), mosquitto would drop to its own user and could not
    write the test's temp dirs: tell it to stay who it is."""
    return "user root\n" if os.geteuid() == 0 else ""


def open_config(port: int, persistence: Path) -> str:
    """An anonymous broker on localhost (the publisher and handler tests)."""
    return (
        user_line() + f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {persistence}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 100000\n"
        "log_dest stdout\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
    )


class Mosquitto:
    def __init__(self, workdir: Path, config: str, port: int) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"

    @classmethod
    def open(cls, workdir: Path) -> Mosquitto:
        port = free_port()
        data = Path(workdir) / "data"
        data.mkdir(parents=True, exist_ok=True)
        return cls(workdir, open_config(port, data), port)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> Mosquitto:
        require_mosquitto()
        if self.running:
            return self
        self.conf_path.write_text(self.config)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf_path)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}:\n{self.log_path.read_text()}"
                )
            try:
                wait_port(self.port, 0.2)
                return self
            except TimeoutError:
                if time.monotonic() > end:
                    raise

    def stop(self) -> None:
        """SIGTERM and wait: the broker is gone, its sockets closed, its state saved."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text()
        return ""


def add_user(passwd_file: Path, user: str, password: str) -> None:
    """``mosquitto_passwd -b`` (creates the file on first use)."""
    args = [MOSQUITTO_PASSWD, "-b", str(passwd_file), user, password]
    if not passwd_file.exists():
        passwd_file.touch(mode=0o600)
    subprocess.run(args, check=True, capture_output=True)
