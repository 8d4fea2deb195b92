#!/bin/sh
# mmdebstrap customize hook of osimg's pxe-img builds: regenerates the image's initramfs with osimg's PXE
# installer in it, inside the image and in the build's namespace (mmdebstrap --variant=custom; rootless
# builds run it in mmdebstrap's user namespace). $1 is the image's root directory. The customize step put
# the initramfs-tools hook, the boot script and the installer's configuration into the image; this runs
# update-initramfs, whose hook (strict with OSIMG_PXE_BUILD=1) fails the build when a piece is missing.
set -eu
root=$1
for f in /etc/initramfs-tools/hooks/osimg-install /etc/initramfs-tools/scripts/osimg-install \
  /etc/osimg/pxe-install/install.conf; do
  if [ ! -f "$root$f" ]; then
    echo "osimg: $f is not in the image" >&2
    exit 1
  fi
done
if ! chroot "$root" sh -c 'command -v update-initramfs' >/dev/null; then
  echo "osimg: the image has no update-initramfs (install initramfs-tools)" >&2
  exit 1
fi
status=0
OSIMG_PXE_BUILD=1 chroot "$root" update-initramfs -u -k all || status=$?
if [ "$status" -ne 0 ]; then
  echo "osimg: update-initramfs exited with status $status inside the image" >&2
  exit "$status"
fi
