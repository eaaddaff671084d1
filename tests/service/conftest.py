"""Fixtures for the service tests: notify sockets standing in for systemd."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servicekit import NotifySocket


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # a short path: unix socket paths are limited to 108 bytes
    with tempfile.TemporaryDirectory(prefix="hcn-") as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        ns = NotifySocket(path, sock).start()
        try:
            yield ns
        finally:
            ns.close()


@pytest.fixture
def abstract_notify_socket() -> Iterator[NotifySocket]:
    name = f"heatcycler-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    ns = NotifySocket("@" + name, sock).start()
    try:
        yield ns
    finally:
        ns.close()
