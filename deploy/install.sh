#!/usr/bin/env bash
# Install heatcycler on a Raspberry Pi OS / Debian rig host as a systemd service.
#
#   sudo deploy/install.sh [--heater-usb VENDOR:PRODUCT[:SERIAL]]   install or upgrade
#   sudo deploy/install.sh --uninstall                              remove (keeps data+config)
#   deploy/install.sh --root DIR                                    into a throw-away root
#
# What it does (idempotent: run it again to upgrade; it never overwrites your rig file):
#   - system user `heatcycler` (groups dialout: the heater board's tty; usbtmc: the SMU
#     over USB-TMC), no login, no home but its data directory
#   - uv, if missing; the application into its own environment under --prefix
#     (/opt/heatcycler/venv), pinned by uv.lock; /usr/local/bin/heatcycler
#   - /etc/heatcycler/rig.yaml from deploy/rig.example.yaml (only if absent; root:heatcycler 0640)
#   - /var/lib/heatcycler (heatcycler:heatcycler 0750): the runs' journals
#   - /etc/systemd/system/heatcycler.service (enabled, not started: edit rig.yaml first)
#   - /etc/udev/rules.d/99-heatcycler.rules (/dev/heatcycler-heater, USB-TMC access)
#   Logs go to the journal: journalctl -u heatcycler -f
#
# --root DIR (or DESTDIR=DIR): build the same tree under DIR without root privileges or a
# running systemd (CI, image builds). useradd, systemctl and udevadm are skipped (said so);
# modes are always set; ownership where the users exist in DIR/etc/passwd and we may chown.
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(dirname "$HERE")
ROOT=${DESTDIR:-}
PREFIX=/opt/heatcycler
ACTION=install
HEATER_USB=
PYTHON=
ENABLE=1
USER_NAME=heatcycler
CONF_DIR=/etc/heatcycler
DATA_DIR=/var/lib/heatcycler
UNIT_PATH=/etc/systemd/system/heatcycler.service
RULE_PATH=/etc/udev/rules.d/99-heatcycler.rules
BIN_LINK=/usr/local/bin/heatcycler

usage() {
  sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
  cat <<EOF

Options:
  --root DIR        install into DIR instead of / (same as DESTDIR=DIR)
  --prefix DIR      where the application goes (default $PREFIX)
  --heater-usb V:P[:S]  the heater board's USB vendor:product[:serial] for the udev rule
                    (udevadm info --query=property --name=/dev/ttyACM0 shows them)
  --python PATH     the Python (>= 3.11) for the environment (default: the system's
                    python3 if new enough, else one uv installs under the prefix)
  --source DIR      the heatcycler checkout to install (default: $SRC)
  --no-enable       do not enable the service
  --uninstall       remove the application, unit and udev rule; keep data, config, user
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --root=*) ROOT=${1#*=}; shift ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --heater-usb) HEATER_USB=${2:?--heater-usb needs VENDOR:PRODUCT[:SERIAL]}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a path}; shift 2 ;;
    --source) SRC=${2:?--source needs a directory}; shift 2 ;;
    --no-enable) ENABLE=0; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path" ;; esac
ROOT=${ROOT%/}
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
  [ "$ROOT" = / ] && ROOT=
fi
LIVE=0
[ -z "$ROOT" ] && LIVE=1
if [ "$LIVE" = 1 ] && [ "$(id -u)" != 0 ]; then
  die "run as root (sudo $0 …), or with --root DIR to build a tree without privileges"
fi
SYSTEMD=0
[ "$LIVE" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null && SYSTEMD=1

r() { printf '%s%s' "$ROOT" "$1"; }   # a path of the target system, here
skip() { say "skipping $1 (${2:-installing into --root $ROOT, not the live system})"; }

# --- ownership: names resolved on the target system ------------------------------------
id_in() {  # id_in passwd|group NAME -> numeric id on the target, or nothing
  if [ "$LIVE" = 1 ]; then
    getent "$1" "$2" | cut -d: -f3
  elif [ -f "$ROOT/etc/$1" ]; then
    awk -F: -v n="$2" '$1 == n { print $3; exit }' "$ROOT/etc/$1"
  fi
}
OWN_WARNED=0
own() {  # own USER GROUP PATH...
  local user=$1 group=$2 uid gid
  shift 2
  uid=$(id_in passwd "$user"); gid=$(id_in group "$group")
  if [ "$(id -u)" != 0 ] || [ -z "$uid" ] || [ -z "$gid" ]; then
    if [ "$OWN_WARNED" = 0 ]; then
      OWN_WARNED=1
      if [ "$(id -u)" != 0 ]; then
        skip "chown to $user:$group" "not running as root"
      else
        skip "chown to $user:$group" "no such user/group in $ROOT/etc/passwd, /etc/group"
      fi
    fi
    return 0
  fi
  chown "$uid:$gid" "$@"
}

# --- uninstall ---------------------------------------------------------------------------
if [ "$ACTION" = uninstall ]; then
  if [ "$SYSTEMD" = 1 ]; then
    if systemctl is-active --quiet heatcycler.service; then
      say "stopping heatcycler.service (a run in progress is left interrupted, resumable)"
    fi
    systemctl disable --now heatcycler.service 2>/dev/null || true
  else
    skip "systemctl disable --now heatcycler" "$([ "$LIVE" = 1 ] && echo 'systemd is not running' || echo "--root $ROOT")"
  fi
  rm -f "$(r "$UNIT_PATH")" "$(r "$RULE_PATH")"
  if [ -L "$(r "$BIN_LINK")" ]; then rm -f "$(r "$BIN_LINK")"; fi
  rm -rf "$(r "$PREFIX")"
  if [ "$SYSTEMD" = 1 ]; then systemctl daemon-reload; fi
  if [ "$LIVE" = 1 ] && command -v udevadm >/dev/null; then udevadm control --reload || true; fi
  say "removed the application ($PREFIX), the unit and the udev rule"
  say "kept: $CONF_DIR (config), $DATA_DIR (runs), the user $USER_NAME"
  say "  to remove them too: userdel $USER_NAME; groupdel usbtmc; rm -r $CONF_DIR $DATA_DIR"
  exit 0
fi

# --- install -------------------------------------------------------------------------
[ -f "$SRC/pyproject.toml" ] && [ -f "$SRC/uv.lock" ] || die "$SRC is not a heatcycler checkout (pyproject.toml, uv.lock)"

if [ "$LIVE" = 1 ]; then
  case "$(uname -m)" in
    armv6l|armv7l)
      say "warning: $(uname -m): numpy/pyarrow/matplotlib have no 32-bit ARM wheels on PyPI;"
      say "  use the 64-bit Raspberry Pi OS (aarch64), or expect long builds from source" ;;
  esac
fi

# 1. the service user
if [ "$LIVE" = 1 ]; then
  getent group "$USER_NAME" >/dev/null || groupadd --system "$USER_NAME"
  getent group usbtmc >/dev/null || groupadd --system usbtmc
  getent group dialout >/dev/null || groupadd --system dialout
  if id "$USER_NAME" >/dev/null 2>&1; then
    usermod --append --groups dialout,usbtmc "$USER_NAME"
  else
    useradd --system --gid "$USER_NAME" --groups dialout,usbtmc --home-dir "$DATA_DIR" \
      --no-create-home --shell /usr/sbin/nologin --comment "heatcycler rig controller" "$USER_NAME"
    say "created the system user $USER_NAME (groups dialout, usbtmc)"
  fi
else
  skip "useradd $USER_NAME / groupadd usbtmc"
fi

# 2. system libraries: libusb for USB-TMC instruments through pyvisa-py/pyusb
if [ "$LIVE" = 1 ]; then
  if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1\.0\.so\.0'; then
    say "installing libusb-1.0-0 (USB-TMC instruments)"
    apt-get update -qq && apt-get install -y -qq libusb-1.0-0
  fi
else
  skip "apt-get install libusb-1.0-0"
fi

# 3. uv
if ! command -v uv >/dev/null; then
  if [ "$LIVE" = 1 ]; then
    command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
    say "installing uv into /usr/local/bin"
    curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin UV_NO_MODIFY_PATH=1 sh
  else
    die "uv is not installed (pip install uv); --root does not install it"
  fi
fi

# 4. the application, in its own environment, pinned by uv.lock
VENV=$(r "$PREFIX")/venv
good_python() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if [ -z "$PYTHON" ]; then
  for candidate in /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 /usr/bin/python3; do
    if good_python "$candidate"; then PYTHON=$candidate; break; fi
  done
fi
if [ -z "$PYTHON" ]; then
  # No system Python >= 3.11 (older Debian): one managed by uv, under the prefix, where
  # the service user can read it (not in root's home, which the unit hides anyway).
  export UV_PYTHON_INSTALL_DIR
  UV_PYTHON_INSTALL_DIR=$(r "$PREFIX")/python
  say "no system Python >= 3.11: installing one with uv into $PREFIX/python"
  uv python install --quiet 3.11
  PYTHON=3.11
fi
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  say "updating the environment $PREFIX/venv"
else
  rm -rf "$VENV"
  say "creating the environment $PREFIX/venv ($PYTHON)"
  uv venv --quiet --relocatable --python "$PYTHON" "$VENV"
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$SRC" && uv export --quiet --frozen --no-dev --no-emit-project --no-hashes -o "$TMP/requirements.txt")
uv pip install --quiet --python "$VENV/bin/python" --compile-bytecode -r "$TMP/requirements.txt"
uv pip install --quiet --python "$VENV/bin/python" --compile-bytecode --no-deps \
  --reinstall-package heatcycler "$SRC"
"$VENV/bin/heatcycler" --help >/dev/null || die "the installed heatcycler does not run"
install -m 0644 "$SRC/README.md" "$(r "$PREFIX")/README.md"
chmod 0755 "$(r "$PREFIX")" "$VENV"
mkdir -p "$(r "$(dirname "$BIN_LINK")")"
ln -sfn "$PREFIX/venv/bin/heatcycler" "$(r "$BIN_LINK")"

# 5. configuration: never overwritten
install -d -m 0750 "$(r "$CONF_DIR")"
own root "$USER_NAME" "$(r "$CONF_DIR")"
install -m 0644 "$HERE/rig.example.yaml" "$(r "$CONF_DIR")/rig.example.yaml"
NEW_CONFIG=0
if [ -e "$(r "$CONF_DIR")/rig.yaml" ]; then
  say "kept $CONF_DIR/rig.yaml (the shipped example is $CONF_DIR/rig.example.yaml)"
else
  install -m 0640 "$HERE/rig.example.yaml" "$(r "$CONF_DIR")/rig.yaml"
  own root "$USER_NAME" "$(r "$CONF_DIR")/rig.yaml"
  NEW_CONFIG=1
  say "wrote $CONF_DIR/rig.yaml from the example: edit it for this rig"
fi

# 6. data
install -d -m 0750 "$(r "$DATA_DIR")"
own "$USER_NAME" "$USER_NAME" "$(r "$DATA_DIR")"

# 7. the unit (ours: replaced on upgrade; local changes belong in a drop-in)
mkdir -p "$(dirname "$(r "$UNIT_PATH")")"
sed "s#/opt/heatcycler/#$PREFIX/#g" "$HERE/heatcycler.service" > "$TMP/heatcycler.service"
install -m 0644 "$TMP/heatcycler.service" "$(r "$UNIT_PATH")"

# 8. the udev rule: written with --heater-usb, otherwise installed once and then yours
mkdir -p "$(dirname "$(r "$RULE_PATH")")"
if [ -n "$HEATER_USB" ]; then
  IFS=: read -r vendor product serial <<<"$HEATER_USB"
  [[ "$vendor" =~ ^[0-9a-fA-F]{4}$ && "$product" =~ ^[0-9a-fA-F]{4}$ ]] \
    || die "--heater-usb $HEATER_USB: want VENDOR:PRODUCT[:SERIAL] in hex, e.g. 2e8a:000a:E6614C311B7C3A2F"
  [[ -z "${serial:-}" || "$serial" =~ ^[A-Za-z0-9._-]+$ ]] || die "--heater-usb: odd serial '$serial'"
  vendor=${vendor,,}; product=${product,,}
  match="ATTRS{idVendor}==\"$vendor\", ATTRS{idProduct}==\"$product\""
  [ -n "${serial:-}" ] && match="$match, ATTRS{serial}==\"$serial\""
  awk -v m="$match" '/SYMLINK\+="heatcycler-heater"/ { sub(/ATTRS\{idVendor\}.*ATTRS\{serial\}=="[^"]*"/, m) } { print }' \
    "$HERE/99-heatcycler.rules" > "$TMP/99-heatcycler.rules"
  install -m 0644 "$TMP/99-heatcycler.rules" "$(r "$RULE_PATH")"
  say "wrote $RULE_PATH for the heater board $HEATER_USB"
elif [ -e "$(r "$RULE_PATH")" ]; then
  say "kept $RULE_PATH"
else
  install -m 0644 "$HERE/99-heatcycler.rules" "$(r "$RULE_PATH")"
  say "wrote $RULE_PATH with example USB ids: set your board's (--heater-usb, or edit it)"
fi

# 9. systemd and udev
if [ "$LIVE" = 1 ] && command -v udevadm >/dev/null; then
  udevadm control --reload
  udevadm trigger --action=add --subsystem-match=tty --subsystem-match=usb --subsystem-match=usbmisc
else
  skip "udevadm control --reload && udevadm trigger"
fi
if [ "$SYSTEMD" = 1 ]; then
  systemctl daemon-reload
  if [ "$ENABLE" = 1 ]; then systemctl enable --quiet heatcycler.service; fi
else
  skip "systemctl daemon-reload && systemctl enable heatcycler" \
    "$([ "$LIVE" = 1 ] && echo 'systemd is not running' || echo "--root $ROOT")"
fi

say "installed heatcycler $("$VENV/bin/heatcycler" --version 2>/dev/null || "$VENV/bin/python" -c 'from importlib.metadata import version; print(version("heatcycler"))')"
if [ "$NEW_CONFIG" = 1 ]; then
  say "next: edit $CONF_DIR/rig.yaml, then check and start:"
  say "  sudo -u $USER_NAME heatcycler doctor --rig $CONF_DIR/rig.yaml"
  say "  sudo systemctl start heatcycler && journalctl -u heatcycler -f"
else
  say "restart to run the new version: sudo systemctl restart heatcycler"
  say "  (a run in progress is stopped safely and resumed at once per the rig's resume policy)"
fi
