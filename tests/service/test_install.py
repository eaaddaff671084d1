"""The files in deploy/: install.sh into a throw-away root (files, modes, owners,
idempotence, --uninstall keeping data), the unit under ``systemd-analyze verify``, the
udev rule, and the example rig file."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from controller.rig import RigConfig
from controller.validate import load_rig

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
INSTALL = DEPLOY / "install.sh"
UNIT = DEPLOY / "heatcycler.service"
RULES = DEPLOY / "99-heatcycler.rules"
EXAMPLE = DEPLOY / "rig.example.yaml"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
ROOT_USER = os.geteuid() == 0
# the service user's ids in the throw-away root's /etc/passwd and /etc/group
UID, GID, USBTMC, DIALOUT = 990, 990, 991, 20


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def prepare_root(root: Path) -> None:
    """A target system that already has the service user (as an image would)."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        f"heatcycler:x:{UID}:{GID}:heatcycler:/var/lib/heatcycler:/usr/sbin/nologin\n"
    )
    (root / "etc/group").write_text(
        f"root:x:0:\ndialout:x:{DIALOUT}:heatcycler\nheatcycler:x:{GID}:\nusbtmc:x:{USBTMC}:heatcycler\n"
    )


def tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """path -> (kind, mode, content hash or link target); bytecode caches left out."""
    out: dict[str, tuple[str, int, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if "__pycache__" in rel or rel.endswith(".pyc"):
            continue
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", 0, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = ("file", stat.S_IMODE(st.st_mode), digest)
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("root")
    prepare_root(root)
    done = install(root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root, done.stdout


# ----------------------------------------------------------------------- install.sh


@pytest.mark.slow
def test_install_into_a_root_produces_every_file_with_its_mode(
    installed: tuple[Path, str],
) -> None:
    root, out = installed
    expected_modes = {
        "etc/heatcycler": 0o750,
        "etc/heatcycler/rig.yaml": 0o640,
        "etc/heatcycler/rig.example.yaml": 0o644,
        "var/lib/heatcycler": 0o750,
        "etc/systemd/system/heatcycler.service": 0o644,
        "etc/udev/rules.d/99-heatcycler.rules": 0o644,
        "opt/heatcycler": 0o755,
        "opt/heatcycler/venv": 0o755,
        "opt/heatcycler/README.md": 0o644,
    }
    for rel, want in expected_modes.items():
        assert mode(root / rel) == want, f"{rel}: {oct(mode(root / rel))}"
    assert (root / "etc/heatcycler/rig.yaml").read_text() == EXAMPLE.read_text()
    assert (root / "etc/systemd/system/heatcycler.service").read_text() == UNIT.read_text()
    assert (root / "etc/udev/rules.d/99-heatcycler.rules").read_text() == RULES.read_text()
    link = root / "usr/local/bin/heatcycler"
    assert os.readlink(link) == "/opt/heatcycler/venv/bin/heatcycler"
    # the application runs from its own environment
    exe = root / "opt/heatcycler/venv/bin/heatcycler"
    assert os.access(exe, os.X_OK)
    help_text = subprocess.run(
        [str(exe), "doctor", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--protocol" in help_text
    # told what it skipped, and why
    assert "skipping useradd heatcycler" in out
    assert "skipping systemctl daemon-reload && systemctl enable heatcycler" in out
    assert "skipping udevadm control --reload" in out
    assert "edit /etc/heatcycler/rig.yaml" in out


@pytest.mark.slow
def test_install_sets_owners_from_the_roots_own_users(installed: tuple[Path, str]) -> None:
    root, out = installed
    if not ROOT_USER:
        assert "skipping chown" in out
        assert "not running as root" in out
        return
    data = (root / "var/lib/heatcycler").stat()
    assert (data.st_uid, data.st_gid) == (UID, GID)
    for rel in ("etc/heatcycler", "etc/heatcycler/rig.yaml"):
        st = (root / rel).stat()
        assert (st.st_uid, st.st_gid) == (0, GID), rel  # root-owned, the service reads it
    unit = (root / "etc/systemd/system/heatcycler.service").stat()
    assert (unit.st_uid, unit.st_gid) == (0, 0)
    venv = (root / "opt/heatcycler/venv/bin/python").lstat()
    assert venv.st_uid == 0  # the service user cannot change its own code


@pytest.mark.slow
def test_install_twice_is_idempotent_keeps_edits_and_uninstall_keeps_data(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    prepare_root(root)
    first = install(root)
    assert first.returncode == 0, first.stderr
    before = tree(root)
    second = install(root)
    assert second.returncode == 0, second.stderr
    assert tree(root) == before
    assert "kept /etc/heatcycler/rig.yaml" in second.stdout
    assert "kept /etc/udev/rules.d/99-heatcycler.rules" in second.stdout

    # the technician's edits and the runs survive an upgrade
    rig_file = root / "etc/heatcycler/rig.yaml"
    rig_file.write_text(rig_file.read_text().replace("rig: rig-01", "rig: rig-07"))
    run = root / "var/lib/heatcycler/20260101T000000Z-rig-07-S1.sqlite"
    run.write_bytes(b"journal")
    third = install(root, "--heater-usb", "2E8A:000A:E66118604B3A2F2A")
    assert third.returncode == 0, third.stderr
    assert "rig: rig-07" in rig_file.read_text()
    rule = (root / "etc/udev/rules.d/99-heatcycler.rules").read_text()
    assert (
        'ATTRS{idVendor}=="2e8a", ATTRS{idProduct}=="000a", ATTRS{serial}=="E66118604B3A2F2A", '
        'SYMLINK+="heatcycler-heater"' in rule
    )
    assert rule.count("E66118604B3A2F2A") == 1
    bad = install(root, "--heater-usb", "xyz")
    assert bad.returncode != 0
    assert "want VENDOR:PRODUCT[:SERIAL]" in bad.stderr

    gone = install(root, "--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not (root / "opt/heatcycler").exists()
    assert not (root / "etc/systemd/system/heatcycler.service").exists()
    assert not (root / "etc/udev/rules.d/99-heatcycler.rules").exists()
    assert not (root / "usr/local/bin/heatcycler").exists()
    assert run.read_bytes() == b"journal"
    assert "rig: rig-07" in rig_file.read_text()
    assert "kept: /etc/heatcycler (config), /var/lib/heatcycler (runs)" in gone.stdout
    again = install(root, "--uninstall")  # nothing left to remove: still fine
    assert again.returncode == 0


def test_install_refuses_the_live_system_without_root(tmp_path: Path) -> None:
    if ROOT_USER:
        env = {**os.environ, "PATH": os.environ["PATH"]}
        done = subprocess.run(
            ["bash", str(INSTALL), "--root", str(tmp_path), "--bogus"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode != 0
        assert "unknown option --bogus" in done.stderr
        return
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "run as root" in done.stderr


# ------------------------------------------------------------------------- the unit


def _verify_root(tmp_path: Path, unit_text: str) -> Path:
    """A root holding the system's own units, the unit and its ExecStart binary."""
    root = tmp_path / "verify"
    system_units = next(
        p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()
    )
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/heatcycler.service").write_text(unit_text)
    exe = root / "opt/heatcycler/venv/bin/heatcycler"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return root


def _verify(root: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={root}", "heatcycler.service"],
        capture_output=True,
        text=True,
        check=False,
    )


needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (CI installs systemd)"
)


@needs_systemd_analyze
def test_systemd_analyze_verify_passes_without_a_warning(tmp_path: Path) -> None:
    done = _verify(_verify_root(tmp_path, UNIT.read_text()))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys are only warnings: none


@needs_systemd_analyze
def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("Type=notify", "Type=notify\nWatchdogSecs=30s")
    broken = broken.replace("/opt/heatcycler/venv/bin/heatcycler", "/opt/nowhere/heatcycler")
    done = _verify(_verify_root(tmp_path, broken))
    assert done.returncode != 0
    assert "is not executable" in done.stderr
    assert "Unknown key 'WatchdogSecs'" in done.stderr


@needs_systemd_analyze
def test_the_units_exposure_stays_low(tmp_path: Path) -> None:
    root = _verify_root(tmp_path, UNIT.read_text())
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run(
        [
            SYSTEMD_ANALYZE,
            "security",
            "--offline=yes",
            f"--root={root}",
            "--threshold=30",  # out of 100: "OK" is below 50; this unit scores ≈ 22
            "--no-pager",
            "heatcycler.service",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert re.search(r"Overall exposure level for heatcycler.service: [0-2]\.\d OK", done.stdout)


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_says_what_the_issue_asks() -> None:
    s = _unit_settings()
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] == ["30s"]
    assert s["Restart"] == ["on-failure"]
    assert s["RestartPreventExitStatus"] == ["2"]
    assert s["User"] == ["heatcycler"]
    assert s["ProtectSystem"] == ["strict"]
    assert s["ReadWritePaths"] == ["/var/lib/heatcycler"]
    assert s["NoNewPrivileges"] == ["yes"]
    assert s["ProtectHome"] == ["yes"]
    assert s["PrivateTmp"] == ["yes"]
    assert "dialout" in s["SupplementaryGroups"][0]
    assert {"char-ttyACM rw", "char-ttyUSB rw", "char-usb_device rw"} <= set(s["DeviceAllow"])
    assert s["StandardError"] == ["journal"]
    assert s["ExecStart"] == [
        "/opt/heatcycler/venv/bin/heatcycler service --rig /etc/heatcycler/rig.yaml"
    ]
    # the service's watchdog must outlast the control tick many times over
    stale_after = 30 / 2
    assert stale_after >= 10 * 1.0


def test_the_unit_starts_the_service_command_with_the_installed_paths() -> None:
    from controller.cli import build_parser

    argv = _unit_settings()["ExecStart"][0].split()[1:]
    args = build_parser().parse_args(argv)
    assert args.command == "service"
    assert str(args.rig) == "/etc/heatcycler/rig.yaml"


# ----------------------------------------------------------------- the udev rule

_PAIR = re.compile(r'\s*([A-Z_]+)(\{[^}]+\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')
_MATCH_KEYS = {"SUBSYSTEM", "KERNEL", "ATTR", "ATTRS", "ENV"}
_ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "TAG", "ENV"}


def _rules() -> list[list[tuple[str, str, str, str]]]:
    rules = []
    for line in RULES.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pairs, pos = [], 0
        while pos < len(line):
            m = _PAIR.match(line, pos)
            assert m is not None, f"cannot parse the udev rule at {line[pos:]!r}"
            pairs.append((m[1], m[2] or "", m[3], m[4]))
            pos = m.end()
        rules.append(pairs)
    return rules


def test_the_udev_rule_names_the_board_and_opens_usbtmc_to_its_group() -> None:
    rules = _rules()
    for pairs in rules:
        for key, _, op, _ in pairs:
            allowed = _MATCH_KEYS if op in ("==", "!=") else _ASSIGN_KEYS
            assert key in allowed, (key, op)
    heater = [p for p in rules if ("SYMLINK", "", "+=", "heatcycler-heater") in p]
    assert len(heater) == 1
    keys = {(k, a): v for k, a, op, v in heater[0] if op == "=="}
    assert keys[("SUBSYSTEM", "")] == "tty"
    assert re.fullmatch(r"[0-9a-f]{4}", keys[("ATTRS", "{idVendor}")])
    assert re.fullmatch(r"[0-9a-f]{4}", keys[("ATTRS", "{idProduct}")])
    assert keys[("ATTRS", "{serial}")]
    assigned = {(k, a): v for k, a, op, v in heater[0] if op in ("=", "+=")}
    assert assigned[("GROUP", "")] == "dialout"
    assert assigned[("MODE", "")] == "0660"
    assert assigned[("TAG", "")] == "systemd"  # the unit waits for dev-heatcycler\x2dheater
    usbtmc = [p for p in rules if ("GROUP", "", "=", "usbtmc") in p]
    assert any(("SUBSYSTEM", "", "==", "usbmisc") in p for p in usbtmc)
    assert any(("ATTR", "{idProduct}", "==", "2450") in p for p in usbtmc)
    assert all(("MODE", "", "=", "0660") in p for p in usbtmc)
    assert "udevadm info" in RULES.read_text()  # how to find the ids


# ------------------------------------------------------------------ the rig example


def _fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = info.annotation
        inner = [a for a in getattr(sub, "__args__", (sub,)) if isinstance(a, type)]
        models = [a for a in inner if issubclass(a, BaseModel)]
        if models:
            out += _fields(models[0], path + ".")
        else:
            out.append(path)
    return out


def test_the_example_rig_file_is_valid_and_every_setting_is_there_and_commented() -> None:
    rig = load_rig(EXAMPLE)
    assert rig.smu.resource == "TCPIP::192.168.1.50::5025::SOCKET"
    assert str(rig.smu.driver) == "keithley2450"
    assert rig.heater.port == "/dev/heatcycler-heater"
    assert str(rig.data_dir) == "/var/lib/heatcycler"
    assert str(rig.resume.on_boot) == "auto"
    lines = EXAMPLE.read_text().splitlines()
    text = "\n".join(lines)
    missing = []
    for path in _fields(RigConfig):
        if path.startswith("sim."):
            continue  # the software rig's section: not for a real rig
        key = path.rsplit(".", 1)[-1]
        if not re.search(rf"^\s*#?\s*{re.escape(key)}:", text, re.M):
            missing.append(path)
    assert missing == []
    # each setting has a comment on its line or in the lines just above
    uncommented = []
    for i, line in enumerate(lines):
        if re.match(r"^\s*[a-z_]+:", line) and "#" not in line:
            above = [ln.strip() for ln in lines[max(0, i - 3) : i]]
            if not any(ln.startswith("#") for ln in above) and not line.rstrip().endswith(":"):
                uncommented.append(line)
    assert uncommented == []


def test_the_example_is_what_the_doctor_and_the_unit_expect() -> None:
    text = EXAMPLE.read_text()
    unit = UNIT.read_text()
    assert "/etc/heatcycler/rig.yaml" in unit
    data_dir: Any = re.search(r"^data_dir: (\S+)", text, re.M)
    assert data_dir is not None
    assert f"ReadWritePaths={data_dir[1]}" in unit
