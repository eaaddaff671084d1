#!/bin/sh
# Add a heatcycler MQTT user: password in the password file, role block in the ACL.
#   ./add-user.sh rig rig-07          # the rig's username is its rig id
#   ./add-user.sh operator bob
#   ./add-user.sh dashboard grafana
# The password is read from $MQTT_PASSWORD if set, otherwise mosquitto_passwd asks.
# Then reload the broker: systemctl reload mosquitto (or kill -HUP its pid).
set -eu
role=${1:?usage: add-user.sh rig|operator|dashboard NAME}
name=${2:?usage: add-user.sh rig|operator|dashboard NAME}
passwd_file=${PASSWD_FILE:-/etc/mosquitto/heatcycler.passwd}
acl_file=${ACL_FILE:-/etc/mosquitto/heatcycler.acl}
prefix=${PREFIX:-heatcycler}

case "$name" in
  *[!A-Za-z0-9_.-]*|"") echo "add-user.sh: NAME may use A-Z a-z 0-9 _ . - only" >&2; exit 2 ;;
esac

[ -f "$passwd_file" ] || (umask 077 && : > "$passwd_file")
if [ -n "${MQTT_PASSWORD:-}" ]; then
  mosquitto_passwd -b "$passwd_file" "$name" "$MQTT_PASSWORD"
else
  mosquitto_passwd "$passwd_file" "$name"
fi

if grep -qx "user $name" "$acl_file" 2>/dev/null; then
  echo "add-user.sh: $name already has an ACL block in $acl_file (password updated)"
  exit 0
fi
ha_id=$(printf '%s' "$name" | tr -c 'A-Za-z0-9_\n-' '_')
case "$role" in
  rig)
    printf '\nuser %s\ntopic write %s/%s/#\ntopic read %s/%s/cmd/#\ntopic write homeassistant/device/heatcycler_%s/config\n' \
      "$name" "$prefix" "$name" "$prefix" "$name" "$ha_id" >> "$acl_file" ;;
  operator)
    printf '\nuser %s\ntopic read %s/#\n' "$name" "$prefix" >> "$acl_file"
    for cmd in pause resume abort status; do
      printf 'topic write %s/+/cmd/%s\n' "$prefix" "$cmd" >> "$acl_file"
    done ;;
  dashboard)
    printf '\nuser %s\ntopic read %s/#\n' "$name" "$prefix" >> "$acl_file" ;;
  *) echo "add-user.sh: role must be rig, operator or dashboard" >&2; exit 2 ;;
esac
echo "add-user.sh: added $role $name"
