#!/bin/busybox sh
# /init of the osimg micro test guest: a Debian kernel and busybox, nothing else (built by
# test/support/guest-images.ts). It does the part of cloud-init that tests look at:
#   - finds the NoCloud seed by its ISO 9660 volume id (cidata) and mounts it;
#   - sets the host name from meta-data (local-hostname);
#   - runs the runcmd items of user-data, in a tiny subset of YAML: a top-level "runcmd:" followed by items
#     "- command" each on one line (plain, 'single' or "double" quoted), each run with busybox sh; list-form
#     items ("- [a, b]"), write_files, users and the rest are ignored;
#   - prints markers on the serial console: "osimg-micro: boot id=...", "osimg-micro: hostname=...",
#     "osimg-micro: ready", and a cloud-init style "Cloud-init v. ... finished at" line, so readiness by
#     console works as for real images;
#   - answers a guest agent subset on org.qemu.guest_agent.0: guest-sync(-delimited), guest-ping,
#     guest-get-host-name, guest-network-get-interfaces (lo only); other commands get CommandNotFound;
#   - powers off on the ACPI power button (system_powerdown), listened to from early in the boot;
#   - keeps a root shell on the serial console.
export PATH=/bin
/bin/busybox mkdir -p /proc /sys /dev /tmp /cidata
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

say() { echo "osimg-micro: $*"; }
say "boot id=$(cat /proc/sys/kernel/random/boot_id) uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r module; do insmod "/lib/modules/$module" || say "insmod $module failed"; done </etc/modules.order

# The ACPI power button is watched from the start: a press while the rest boots is not lost.
power_button() {
  button=""
  for _ in $(seq 1 50); do
    for e in /sys/class/input/event*; do
      [ "$(cat "$e/device/name" 2>/dev/null)" = "Power Button" ] && button=/dev/input/${e##*/}
    done
    [ -n "$button" ] && [ -e "$button" ] && break
    sleep 0.1
  done
  if [ -z "$button" ]; then
    say "no ACPI power button"
    return
  fi
  # One input event (24 bytes on x86-64) means the button was pressed.
  dd if="$button" bs=24 count=1 >/dev/null 2>&1
  say "power button pressed, powering off"
  umount /cidata 2>/dev/null
  sync
  poweroff -f
}
power_button &

# The seed is the block device whose ISO 9660 volume id (32 bytes at 0x8028) is cidata.
find_seed() {
  for dev in /dev/vd* /dev/sd* /dev/sr*; do
    [ -b "$dev" ] || continue
    label=$(dd if="$dev" bs=1 skip=32808 count=32 2>/dev/null | tr -d ' ')
    case "$label" in cidata | CIDATA) echo "$dev" && return 0 ;; esac
  done
  return 1
}
seed=""
for _ in $(seq 1 100); do
  seed=$(find_seed) && break
  sleep 0.1
done
if [ -n "$seed" ] && mount -t iso9660 -o ro "$seed" /cidata; then
  say "seed=$seed"
  name=$(sed -n "s/^local-hostname: *//p" /cidata/meta-data | tr -d "\"'")
  [ -n "$name" ] && hostname "$name"
  say "hostname=$(hostname)"
  awk '
    /^[^ #-]/ { inrun = ($0 ~ /^runcmd:/); next }
    inrun && /^ *- / {
      sub(/^ *- /, "")
      if ($0 ~ /^".*"$/) { $0 = substr($0, 2, length($0) - 2); gsub(/\\"/, "\""); gsub(/\\\\/, "\\") }
      else if ($0 ~ /^\x27.*\x27$/) { $0 = substr($0, 2, length($0) - 2); gsub(/\x27\x27/, "\x27") }
      print
    }' /cidata/user-data >/tmp/runcmd
  while IFS= read -r command; do sh -c "$command"; done </tmp/runcmd
else
  say "no NoCloud seed (label cidata) found"
fi
say "ready"
echo "Cloud-init v. 0.0-osimg-micro finished at $(date -R). Datasource DataSourceNoCloud [seed=$seed][dsmode=local].  Up $(cut -d' ' -f1 /proc/uptime) seconds"

agent() {
  port=""
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/${p##*/}
  done
  [ -n "$port" ] || return
  exec 3<>"$port"
  while :; do
    # read fails while the host side is not connected: wait and try again.
    if ! IFS= read -r line <&3; then sleep 0.2; continue; fi
    id=$(echo "$line" | sed -n 's/.*"id": *\([0-9]*\).*/\1/p')
    case "$line" in
      *guest-sync-delimited*) printf '\377{"return": %s}\n' "$id" >&3 ;;
      *guest-sync*) printf '{"return": %s}\n' "$id" >&3 ;;
      *guest-ping*) printf '{"return": {}}\n' >&3 ;;
      *guest-get-host-name*) printf '{"return": {"host-name": "%s"}}\n' "$(hostname)" >&3 ;;
      *guest-network-get-interfaces*)
        printf '{"return": [{"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]}]}\n' >&3 ;;
      *'"execute"'*) printf '{"error": {"class": "CommandNotFound", "desc": "not in the osimg micro guest"}}\n' >&3 ;;
    esac
  done
}
agent </dev/null >/dev/null 2>&1 &

# A root shell on the serial console, for `osimg vm console` tests.
(while :; do setsid sh -c 'exec sh -i <>/dev/ttyS0 >&0 2>&1'; sleep 1; done) &

# init never ends: the power button, the agent and the shell run in the background.
while :; do sleep 3600; done
