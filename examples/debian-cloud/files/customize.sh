#!/bin/sh
# Runs inside the image during the build (osimg's [chroot_script]).
set -eu
echo "built-by=osimg" > /etc/osimg-release
# Quieter boots on the serial console.
mkdir -p /etc/systemd/system.conf.d
printf '[Manager]\nShowStatus=error\n' > /etc/systemd/system.conf.d/osimg.conf
