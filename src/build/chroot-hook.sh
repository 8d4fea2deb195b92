#!/bin/sh
# mmdebstrap customize hook of osimg builds: runs the spec's [chroot_script] inside the image, in the
# build's namespace (mmdebstrap --mode=unshare without root). $1 is the image's root directory; the script
# was uploaded to /osimg-chroot-script. For the script's duration the image resolves names like the build
# host; afterwards its own /etc/resolv.conf is back. With OSIMG_CHROOT_KEEP=1 the script stays in the image
# as /var/lib/osimg/chroot-script (kbimg's rm = false).
set -eu
root=$1
saved="$root/etc/resolv.conf.osimg-saved"
if [ -e "$root/etc/resolv.conf" ] || [ -L "$root/etc/resolv.conf" ]; then
  mv "$root/etc/resolv.conf" "$saved"
fi
if [ -r /etc/resolv.conf ]; then cp /etc/resolv.conf "$root/etc/resolv.conf"; fi
chmod 0755 "$root/osimg-chroot-script"
status=0
chroot "$root" /osimg-chroot-script || status=$?
rm -f "$root/etc/resolv.conf"
if [ -e "$saved" ] || [ -L "$saved" ]; then mv "$saved" "$root/etc/resolv.conf"; fi
if [ "${OSIMG_CHROOT_KEEP:-0}" = 1 ]; then
  mkdir -p "$root/var/lib/osimg"
  mv "$root/osimg-chroot-script" "$root/var/lib/osimg/chroot-script"
else
  rm -f "$root/osimg-chroot-script"
fi
if [ "$status" -ne 0 ]; then
  echo "osimg: chroot_script exited with status $status" >&2
fi
exit "$status"
