# shellcheck shell=sh
# osimg's PXE installer: an initramfs-tools boot script, installed by `osimg build pxe-img` as
# /etc/initramfs-tools/scripts/osimg-install and selected by `boot=osimg-install` on the kernel command
# line (pxelinux.cfg/default and boot.ipxe carry it). /init sources /scripts/local, /scripts/nfs, then
# /scripts/${BOOT}, and calls mountroot(): this file replaces that one function.
#
# Why a boot script rather than a local-top or init-premount script: mountroot() is the step of /init whose
# job is to leave the root file system mounted at ${rootmnt}, and installing is exactly that: the root
# comes over HTTP onto the disk and is then mounted from there, after which /init carries on into the
# installed system as after any local boot (local-bottom, init-bottom, run-init), so the first boot ends in
# the installed OS. And nothing of it runs unless the command line asks for it: the same initramfs, on the
# installed disk's ESP, boots that disk with the default boot=local and root=PARTUUID=…; a premount script
# would run on every boot and have to decide from flags whether to wipe a disk.
#
# What mountroot does:
#   1. reads osimg.rootfs=http://HOST[:PORT]/NAME and osimg.disk=/dev/… from /proc/cmdline, as data:
#      checked against patterns, never evaluated; the disk layout from /etc/osimg/pxe-install (install.conf,
#      partitions.sfdisk, the boot loader configurations the build wrote);
#   2. brings the network up from ip= (initramfs-tools' configure_networking) and asks the server for the
#      tar before touching the disk;
#   3. partitions the disk GPT as osimg's vm-img disks are (ESP + root on the rest, the build's
#      identifiers), makes the file systems, streams the tar into the root (wget | GNU tar: owners, modes,
#      xattrs);
#   4. puts the kernel and initrd of the installed system on the ESP with systemd-boot (UEFI) and SYSLINUX
#      + the GPT MBR (BIOS), the command line root=PARTUUID=…;
#   5. mounts the new root read-only at ${rootmnt} (the network is deconfigured: the installed system
#      configures it itself) and returns to /init.
# A failure says what failed on the console (and in the kernel log, which every console shows), then
# initramfs-tools' panic: a shell on the console (leaving it tries again), or with panic=N a reboot.

# rootmnt and readonly are /init's.
# shellcheck disable=SC2154

OSIMG_CONF=/etc/osimg/pxe-install
OSIMG_DATA=/usr/lib/osimg-install
OSIMG_BIN=/usr/lib/osimg-install/bin
# Failures also go to the kernel log, which every console shows (/dev/console is only the last console=).
osimg_kmsg=/dev/kmsg

osimg_say() {
	printf 'osimg-install: %s\n' "$*"
}

osimg_error() {
	printf 'osimg-install: FAILED: %s\n' "$*"
	printf '<3>osimg-install: FAILED: %s\n' "$*" 2>/dev/null >"$osimg_kmsg"
	return 1
}

# osimg_parse_cmdline CMDLINE: sets osimg_url and osimg_disk from the osimg.rootfs= and osimg.disk= words
# of a kernel command line; fails (with the reason) when one is missing or not of the expected form.
osimg_parse_cmdline() {
	osimg_url=
	osimg_disk=
	set -f
	# shellcheck disable=SC2086 # words of the command line, unglobbed
	for osimg_word in $1; do
		case $osimg_word in
		osimg.rootfs=*) osimg_url=${osimg_word#osimg.rootfs=} ;;
		osimg.disk=*) osimg_disk=${osimg_word#osimg.disk=} ;;
		esac
	done
	set +f
	[ -n "$osimg_url" ] || osimg_error "no osimg.rootfs= on the kernel command line" || return 1
	[ -n "$osimg_disk" ] || osimg_error "no osimg.disk= on the kernel command line" || return 1
	osimg_rest=${osimg_url#http://}
	osimg_host=${osimg_rest%%/*}
	osimg_path=${osimg_rest#"$osimg_host"}
	case $osimg_url in
	http://*) ;;
	*) osimg_error "osimg.rootfs=$osimg_url is not an http:// URL" || return 1 ;;
	esac
	case $osimg_rest in
	*[!A-Za-z0-9._~:/%-]*)
		osimg_error "osimg.rootfs=$osimg_url has characters other than letters, digits and ._~:/%-" || return 1
		;;
	esac
	case $osimg_host in
	'' | :* | *:) osimg_error "osimg.rootfs=$osimg_url names no server" || return 1 ;;
	esac
	case $osimg_path in
	/*[!/]*) ;;
	*) osimg_error "osimg.rootfs=$osimg_url names no file on the server" || return 1 ;;
	esac
	case $osimg_disk in
	/dev/?*) ;;
	*) osimg_error "osimg.disk=$osimg_disk is not a /dev path" || return 1 ;;
	esac
	case $osimg_disk in
	*[!A-Za-z0-9_./:-]* | */../* | */..)
		osimg_error "osimg.disk=$osimg_disk is not a plain /dev path (letters, digits, _./:-, no ..)" || return 1
		;;
	esac
	return 0
}

# osimg_read_conf FILE: the build's install.conf, read as KEY=VALUE lines (never sourced), every value
# checked.
osimg_read_conf() {
	osimg_root_fsuuid=
	osimg_esp_volume_id=
	osimg_bios=
	osimg_syslinux_menu=
	[ -f "$1" ] || osimg_error "$1 is not in this initramfs (was it built by osimg build pxe-img?)" || return 1
	while IFS='=' read -r osimg_key osimg_value; do
		case $osimg_key in
		root_fsuuid) osimg_root_fsuuid=$osimg_value ;;
		esp_volume_id) osimg_esp_volume_id=$osimg_value ;;
		bios) osimg_bios=$osimg_value ;;
		syslinux_menu) osimg_syslinux_menu=$osimg_value ;;
		esac
	done <"$1"
	case $osimg_root_fsuuid in
	????????-????-????-????-????????????) ;;
	*) osimg_error "$1: root_fsuuid is not a UUID" || return 1 ;;
	esac
	case $osimg_root_fsuuid$osimg_esp_volume_id in
	*[!0-9a-f-]*) osimg_error "$1: identifiers must be lower-case hexadecimal" || return 1 ;;
	esac
	case $osimg_esp_volume_id in
	????????) ;;
	*) osimg_error "$1: esp_volume_id is not 8 hexadecimal digits" || return 1 ;;
	esac
	case $osimg_bios$osimg_syslinux_menu in
	00 | 10 | 11) ;;
	*) osimg_error "$1: bios and syslinux_menu must be 0 or 1" || return 1 ;;
	esac
	return 0
}

# osimg_network: configure_networking (scripts/functions) from ip=. It ends by sourcing
# /run/net-DEVICE.conf, which is missing when no address came: in a subshell, that ends the subshell only.
osimg_network() {
	(configure_networking)
	for osimg_conf in /run/net-*.conf; do
		if [ -f "$osimg_conf" ]; then
			osimg_netdev=${osimg_conf#/run/net-}
			osimg_netdev=${osimg_netdev%.conf}
			osimg_say "network: $osimg_netdev $(sed -n "s/^IPV4ADDR='\{0,1\}\([0-9.]*\).*/\1/p" "$osimg_conf")"
			return 0
		fi
	done
	osimg_error "the network did not come up (ip=${IP:-dhcp}): no address on ${DEVICE:-any interface}"
}

# osimg_partition NUMBER: waits for the disk's partition NUMBER and prints its /dev path.
osimg_partition() {
	osimg_name=$(basename "$(readlink -f "$osimg_disk")")
	osimg_tries=0
	while [ "$osimg_tries" -lt 10 ]; do
		for osimg_sys in /sys/class/block/"$osimg_name"/"$osimg_name"*; do
			if [ "$(cat "$osimg_sys/partition" 2>/dev/null)" = "$1" ] && [ -b "/dev/${osimg_sys##*/}" ]; then
				echo "/dev/${osimg_sys##*/}"
				return 0
			fi
		done
		sleep 1
		osimg_tries=$((osimg_tries + 1))
	done
	return 1
}

# osimg_mtools COMMAND...: runs an mtools command (or SYSLINUX's installer, which runs mtools) and shows its
# messages only when it fails: on a partition device mtools warns "Hidden (32) does not match sectors
# (63)" every time (a geometry guess that does not matter on GPT).
osimg_mtools() {
	"$@" 2>/run/osimg-install.mtools && return 0
	grep -v '^Hidden ([0-9]*) does not match sectors' /run/osimg-install.mtools >&2
	return 1
}

# osimg_esp_files: the ESP's files (mtools, no mount) as disk.ts writes them on vm-img disks, SYSLINUX
# and the GPT MBR when the disk boots under BIOS.
osimg_esp_files() {
	osimg_mtools "$OSIMG_BIN/mmd" -i "$osimg_esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries || return 1
	for osimg_pair in "$OSIMG_DATA/systemd-bootx64.efi:/EFI/BOOT/BOOTX64.EFI" "$osimg_kernel:/vmlinuz" \
		"$osimg_initrd:/initrd.img" "$OSIMG_CONF/loader.conf:/loader/loader.conf" \
		"$OSIMG_CONF/osimg.conf:/loader/entries/osimg.conf"; do
		osimg_mtools "$OSIMG_BIN/mcopy" -o -i "$osimg_esp" "${osimg_pair%:*}" "::${osimg_pair##*:}" || return 1
	done
	[ "$osimg_bios" = 1 ] || return 0
	osimg_mtools "$OSIMG_BIN/mcopy" -o -i "$osimg_esp" "$OSIMG_CONF/syslinux.cfg" ::/syslinux.cfg || return 1
	if [ "$osimg_syslinux_menu" = 1 ]; then
		osimg_mtools "$OSIMG_BIN/mcopy" -o -i "$osimg_esp" "$OSIMG_DATA/menu.c32" "$OSIMG_DATA/libutil.c32" :: ||
			return 1
	fi
	# SYSLINUX's installer runs mtools by name.
	(
		PATH="$OSIMG_BIN:$PATH"
		osimg_mtools "$OSIMG_BIN/syslinux" --install "$osimg_esp"
	) || return 1
	# The GPT MBR: the first 440 bytes (the partition table after them stays as sfdisk wrote it).
	dd if="$OSIMG_DATA/gptmbr.bin" of="$osimg_disk" bs=440 count=1 conv=notrunc 2>/dev/null
}

osimg_install() {
	osimg_parse_cmdline "$(cat /proc/cmdline)" || return 1
	osimg_read_conf "$OSIMG_CONF/install.conf" || return 1
	for osimg_tool in sfdisk mke2fs mkfs.fat tar mcopy mmd syslinux; do
		[ -x "$OSIMG_BIN/$osimg_tool" ] ||
			osimg_error "$OSIMG_BIN/$osimg_tool is not in this initramfs (see update-initramfs's warnings)" ||
			return 1
	done
	osimg_say "installing $osimg_url onto $osimg_disk"

	osimg_network || return 1
	osimg_tries=0
	while [ ! -b "$osimg_disk" ]; do
		[ "$osimg_tries" -lt 30 ] || osimg_error "$osimg_disk is not a block device (waited 30 s)" || return 1
		sleep 1
		osimg_tries=$((osimg_tries + 1))
	done
	# Before the disk is touched: is the file there?
	wget -q --spider "$osimg_url" ||
		osimg_error "cannot download $osimg_url (see wget's message above); $osimg_disk is untouched" ||
		return 1

	osimg_say "partitioning $osimg_disk (GPT: ESP, root)"
	"$OSIMG_BIN/sfdisk" --quiet --wipe always --wipe-partitions always "$osimg_disk" \
		<"$OSIMG_CONF/partitions.sfdisk" || osimg_error "sfdisk could not partition $osimg_disk" || return 1
	osimg_esp=$(osimg_partition 1) || osimg_error "partition 1 of $osimg_disk did not appear" || return 1
	osimg_root=$(osimg_partition 2) || osimg_error "partition 2 of $osimg_disk did not appear" || return 1
	"$OSIMG_BIN/mkfs.fat" -F 32 -s 1 -n ESP -i "$osimg_esp_volume_id" "$osimg_esp" >/dev/null ||
		osimg_error "mkfs.fat failed on $osimg_esp" || return 1
	"$OSIMG_BIN/mke2fs" -q -F -t ext4 -L root -U "$osimg_root_fsuuid" "$osimg_root" ||
		osimg_error "mke2fs failed on $osimg_root" || return 1
	mount -t ext4 "$osimg_root" "${rootmnt:?}" || osimg_error "cannot mount $osimg_root" || return 1

	osimg_say "downloading $osimg_url into $osimg_root"
	rm -f /run/osimg-install.wget
	{ wget -q -O - "$osimg_url" || echo "$?" >/run/osimg-install.wget; } |
		"$OSIMG_BIN/tar" --extract --file=- --directory="$rootmnt" --numeric-owner --same-owner \
			--preserve-permissions --xattrs --xattrs-include='*'
	osimg_status=$?
	osimg_wget=$(cat /run/osimg-install.wget 2>/dev/null)
	# 141: wget ended by SIGPIPE, because tar stopped reading (tar's failure is the one to report).
	if [ -n "$osimg_wget" ] && [ "$osimg_wget" != 141 ]; then
		umount "$rootmnt"
		osimg_error "the download of $osimg_url broke off (wget status $osimg_wget)"
		return 1
	fi
	if [ "$osimg_status" -ne 0 ] || [ ! -e "$rootmnt/etc/os-release" ]; then
		umount "$rootmnt"
		osimg_error "$osimg_url did not unpack into a root file system (tar status $osimg_status)"
		return 1
	fi

	osimg_kernel=
	for osimg_file in "$rootmnt"/boot/vmlinuz-*; do
		[ -f "$osimg_file" ] && osimg_kernel=$osimg_file
	done
	osimg_initrd=$rootmnt/boot/initrd.img-${osimg_kernel##*/vmlinuz-}
	if [ -z "$osimg_kernel" ] || [ ! -f "$osimg_initrd" ]; then
		umount "$rootmnt"
		osimg_error "the root file system has no kernel and initrd in /boot"
		return 1
	fi
	osimg_say "boot loaders onto $osimg_esp: systemd-boot (UEFI)$([ "$osimg_bios" = 1 ] && echo ', SYSLINUX (BIOS)'), ${osimg_kernel##*/}"
	if ! (
		export MTOOLS_SKIP_CHECK=1
		osimg_esp_files
	); then
		umount "$rootmnt"
		osimg_error "the boot loaders could not be put onto $osimg_esp"
		return 1
	fi
	sync
	umount "$rootmnt" || osimg_error "cannot unmount $osimg_root" || return 1

	# The installed system configures the network itself (ifupdown, networkd...), as on every later boot.
	if command -v ip >/dev/null 2>&1 && [ -n "${osimg_netdev:-}" ]; then
		ip addr flush dev "$osimg_netdev" 2>/dev/null
		ip link set dev "$osimg_netdev" down 2>/dev/null
	fi
	rm -f /run/net-*.conf

	if [ "${readonly:-y}" = y ]; then
		mount -r -t ext4 "$osimg_root" "$rootmnt"
	else
		mount -w -t ext4 "$osimg_root" "$rootmnt"
	fi || osimg_error "cannot mount the installed root $osimg_root" || return 1
	osimg_say "installed $osimg_url onto $osimg_disk; booting the installed system"
	return 0
}

mountroot() {
	while ! osimg_install; do
		panic "osimg-install: the installation failed (see above). Leave this shell to try again."
	done
}
