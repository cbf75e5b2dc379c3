#!/bin/sh
# Add a device (or change its password) in Mosquitto's password file.
#   deploy/mosquitto/add-device.sh DEVICE_ID [PASSWORD_FILE]
# The user name is the device id: the ACL (`pattern write city/+/%u`) lets the device
# publish on city/<kind>/<its id> only. The password is read from CITYOPS_DEVICE_PASSWORD
# or made up (24 random bytes) and printed once, for the device's configuration.
# Then: systemctl reload mosquitto
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "dùng / usage: $0 DEVICE_ID [PASSWORD_FILE (/etc/mosquitto/passwd)]" >&2
    exit 2
fi
device_id=$1
password_file=${2:-/etc/mosquitto/passwd}

# The same rule as ingest/topics.py DEVICE_ID_PATTERN: letters, digits and . _ -
if ! printf '%s' "$device_id" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'; then
    echo "mã thiết bị không hợp lệ / invalid device id: '$device_id'" \
         "(letters, digits and . _ -, at most 64, starting with a letter or digit)" >&2
    exit 2
fi

password=${CITYOPS_DEVICE_PASSWORD:-}
generated=false
if [ -z "$password" ]; then
    password=$(openssl rand -base64 24)
    generated=true
fi

umask 027
if [ -f "$password_file" ]; then
    mosquitto_passwd -b "$password_file" "$device_id" "$password"
else
    mosquitto_passwd -c -b "$password_file" "$device_id" "$password"
fi
# Mosquitto reads the file as its own user; nobody else needs it.
if getent group mosquitto >/dev/null 2>&1; then
    chgrp mosquitto "$password_file"
fi
chmod 0640 "$password_file"

echo "đã thêm / added: $device_id in $password_file"
if [ "$generated" = true ]; then
    echo "mật khẩu / password: $password"
fi
echo "tiếp theo / next: systemctl reload mosquitto"
