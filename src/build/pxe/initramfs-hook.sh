#!/bin/sh
# initramfs-tools hook of osimg's PXE installer, installed by `osimg build pxe-img` as
# /etc/initramfs-tools/hooks/osimg-install. It puts into the initramfs what the boot script
# /scripts/osimg-install (boot=osimg-install) needs beyond busybox (sh, wget, ip, dd, mount):
#   /usr/lib/osimg-install/bin   sfdisk, mke2fs, mkfs.fat, GNU tar (owners, modes, xattrs), mtools
#                                (mmd, mcopy, mattrib) and syslinux, with their libraries: a directory of
#                                their own, so busybox's and klibc's tools of the same names are never used;
#   /usr/lib/osimg-install       systemd-boot's EFI binary, the GPT MBR and SYSLINUX's menu modules;
#   /etc/osimg/pxe-install       the disk layout and boot loader configurations the build wrote;
#   /etc/mke2fs.conf, glibc's codepage 850 module (mtools), the ext4 module.
# During the build (OSIMG_PXE_BUILD=1) a missing piece fails update-initramfs, so the build fails. In the
# installed system (a kernel update regenerates the initramfs) it is a warning and the installer is left
# out: the installed system does not need it, and a package removed there must not break its updates.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "${1:-}" in
prereqs)
	prereqs
	exit 0
	;;
esac

# shellcheck source=/dev/null
. /usr/share/initramfs-tools/hook-functions

conf=/etc/osimg/pxe-install
data=/usr/lib/osimg-install
bin=$data/bin

missing() {
	if [ "${OSIMG_PXE_BUILD:-0}" = 1 ]; then
		echo "E: osimg-install: $*" >&2
		exit 1
	fi
	echo "W: osimg-install: $*; the PXE installer is left out of this initramfs" >&2
	exit 0
}

[ -f "$conf/install.conf" ] || missing "$conf/install.conf is missing"
for tool in /usr/sbin/sfdisk:fdisk /usr/sbin/mke2fs:e2fsprogs /usr/sbin/mkfs.fat:dosfstools \
	/usr/bin/tar:tar /usr/bin/mtools:mtools /usr/bin/syslinux:syslinux; do
	[ -x "${tool%:*}" ] || missing "${tool%:*} is missing (package ${tool#*:})"
done
for file in /usr/lib/systemd/boot/efi/systemd-bootx64.efi:systemd-boot-efi \
	/usr/lib/syslinux/mbr/gptmbr.bin:syslinux-common \
	/usr/lib/syslinux/modules/bios/menu.c32:syslinux-common \
	/usr/lib/syslinux/modules/bios/libutil.c32:syslinux-common; do
	[ -f "${file%:*}" ] || missing "${file%:*} is missing (package ${file#*:})"
done

# copy_file and copy_exec return 1 when the target is there already, more on errors.
add() {
	"$@"
	[ $? -le 1 ] || missing "cannot add to the initramfs: $*"
}

mkdir -p "$DESTDIR$bin" "$DESTDIR$conf"
for tool in /usr/sbin/sfdisk /usr/sbin/mke2fs /usr/sbin/mkfs.fat /usr/bin/tar /usr/bin/mtools \
	/usr/bin/syslinux; do
	add copy_exec "$tool" "$bin/${tool##*/}"
done
for name in mcopy mmd mattrib; do
	ln -sf mtools "$DESTDIR$bin/$name"
done
add copy_file efi /usr/lib/systemd/boot/efi/systemd-bootx64.efi "$data/systemd-bootx64.efi"
add copy_file mbr /usr/lib/syslinux/mbr/gptmbr.bin "$data/gptmbr.bin"
add copy_file module /usr/lib/syslinux/modules/bios/menu.c32 "$data/menu.c32"
add copy_file module /usr/lib/syslinux/modules/bios/libutil.c32 "$data/libutil.c32"
for file in "$conf"/*; do
	add copy_file config "$file" "$file"
done
# mtools converts file names through iconv's codepage 850: glibc's module for it and the modules' cache.
for gconv in /usr/lib/*/gconv; do
	[ -f "$gconv/IBM850.so" ] || continue
	add copy_file gconv "$gconv/gconv-modules.cache" "$gconv/gconv-modules.cache"
	add copy_exec "$gconv/IBM850.so" "$gconv/IBM850.so"
done
[ -n "$(find "$DESTDIR/usr/lib" -path '*/gconv/IBM850.so' 2>/dev/null)" ] ||
	missing "glibc's gconv module IBM850.so (which mtools needs) is missing (package libc6)"
if [ -f /etc/mke2fs.conf ]; then
	add copy_file config /etc/mke2fs.conf /etc/mke2fs.conf
fi
manual_add_modules ext4
exit 0
