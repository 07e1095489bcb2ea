#!/usr/bin/env bash
# Build (or reuse from the cache) the images the realxen tier boots:
#   xen            the hypervisor, ELF image for QEMU's multiboot loader
#   vmlinuz        Debian's 6.1 kernel: dom0 and the guests
#   dom0-base.cpio Debian bookworm minbase + Xen 4.17 tools + modules, with
#                  the guest kernel and guest base initramfs inside it
# They depend only on Debian package versions (and these scripts), never on
# this tree's netbusd: run-scenario.sh adds netbusd, netbusctl, xensim, the
# hotplug script, dom0's /init, the scenario and the patched frontend
# modules (make frontend-modules) as a small cpio layer at each run, so
# rebuilding netbusd or a frontend patch does not re-run the bootstrap.
# The kernel packages come from kernel-tree.sh's cache (shared with the
# frontend module build, downloaded once).
#
# Usage: tests/realxen/build-images.sh [--print-dir] [--force]
#   --print-dir  print the image directory on the last line of stdout
# Environment:
#   NETBUS_REALXEN_CACHE   cache folder (default /var/cache/netbus-realxen)
#   NETBUS_REALXEN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   NETBUS_REALXEN_SECURITY_MIRROR  (default http://deb.debian.org/debian-security)
# Needs root and the host packages listed in tests/realxen/host-packages.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${NETBUS_REALXEN_CACHE:-/var/cache/netbus-realxen}
MIRROR=${NETBUS_REALXEN_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${NETBUS_REALXEN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
PRINT_DIR=0
FORCE=0
for a in "$@"; do
    case "$a" in
    --print-dir) PRINT_DIR=1 ;;
    --force) FORCE=1 ;;
    *) echo "build-images: unknown argument '$a'" >&2; exit 2 ;;
    esac
done

die() { echo "build-images: ERROR: $*" >&2; exit 1; }
log() { echo "build-images: $*" >&2; }

# Packages installed into dom0 on top of minbase. netbusd's own libraries
# (ldd build/netbusd) are all here; run-scenario.sh copies any that are not.
DOM0_PACKAGES=xen-utils-4.17,xenstore-utils,libusb-1.0-0,liburing2,e2fsprogs,kmod,busybox,util-linux,procps
# Kernel modules: dom0 (backends are NOT loaded: netbusd serves them) and guest.
DOM0_MODULES="xen-evtchn xenfs xen-privcmd xen-gntdev xen-gntalloc loop bridge tun veth xhci-pci"
# usbcore, usb-storage, sd_mod, usbhid, hid-generic, evdev: for the patched
# xen-hcd the run adds (scenario usb: a stick and a keyboard)
GUEST_MODULES="xen-blkfront xen-netfront ext4 crc32c_generic usbcore usb-storage sd_mod usbhid hid-generic evdev"

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, device nodes)"
for tool in mmdebstrap apt-get apt-cache dpkg-deb cpio depmod modprobe busybox zcat sha256sum; do
    command -v "$tool" >/dev/null || die "missing host tool '$tool': install the packages in $HERE/host-packages (make deps)"
done
[ -e /bin/busybox ] && file_busybox=/bin/busybox || file_busybox=$(command -v busybox)
if ldd "$file_busybox" >/dev/null 2>&1; then
    die "$file_busybox is dynamically linked: install busybox-static"
fi

# --- versions -> cache key ----------------------------------------------
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }
if [ -z "$(candidate xen-hypervisor-4.17-amd64)" ] || [ "$(candidate xen-hypervisor-4.17-amd64)" = "(none)" ]; then
    log "apt lists do not know xen-hypervisor-4.17-amd64; running apt-get update"
    apt-get update -qq || die "apt-get update failed"
fi
XEN_VER=$(candidate xen-hypervisor-4.17-amd64)
UTILS_VER=$(candidate xen-utils-4.17)
[ -n "$XEN_VER" ] && [ "$XEN_VER" != "(none)" ] || die "no candidate for xen-hypervisor-4.17-amd64 (is bookworm-security in the apt sources?)"
[ "$XEN_VER" = "$UTILS_VER" ] || die "xen-hypervisor-4.17-amd64 $XEN_VER and xen-utils-4.17 $UTILS_VER differ; the hypervisor and dom0 tools must match"
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 to a kernel package"
KPKG_VER=$(candidate "$KPKG")
BUSYBOX_VER=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)
RECIPE=$(cat "$HERE/build-images.sh" "$HERE/kernel-tree.sh" | sha256sum | cut -c1-12)
KEY=$(printf '%s\n' "xen=$XEN_VER" "kernel=$KPKG=$KPKG_VER" "busybox=$BUSYBOX_VER" "recipe=$RECIPE" | sha256sum | cut -c1-16)
OUT="$CACHE/$KEY"

if [ "$FORCE" = 0 ] && [ -f "$OUT/complete" ]; then
    log "cached images: $OUT (xen $XEN_VER, $KPKG $KPKG_VER)"
    [ "$PRINT_DIR" = 1 ] && echo "$OUT"
    exit 0
fi

log "building images into $OUT (xen $XEN_VER, $KPKG $KPKG_VER, busybox $BUSYBOX_VER)"
T0=$(date +%s)
mkdir -p "$CACHE"
WORK="$CACHE/.work-$KEY"
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK/debs" "$OUT"
trap 'rm -rf "$WORK"' EXIT

# --- hypervisor and kernel: downloaded, unpacked, never installed --------
( cd "$WORK/debs" && apt-get download -q "xen-hypervisor-4.17-amd64=$XEN_VER" >/dev/null ) \
    || die "apt-get download of xen-hypervisor-4.17-amd64 failed"
dpkg-deb -x "$WORK"/debs/xen-hypervisor-4.17-amd64_*.deb "$WORK/xen"
KTREE=$("$HERE/kernel-tree.sh" --print-dir | tail -1) || die "kernel-tree.sh failed"
[ "$KTREE" = "$CACHE/kernel-$KPKG-$KPKG_VER" ] || die "kernel-tree.sh unpacked $KTREE, expected $KPKG $KPKG_VER"
cp -al "$KTREE/image" "$WORK/kernel"    # links: depmod below writes new files only
zcat "$WORK"/xen/boot/xen-4.17-amd64.gz > "$OUT/xen"
KVER=$(ls "$WORK/kernel/lib/modules")
[ -n "$KVER" ] || die "no modules in $KPKG"
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
depmod -b "$WORK/kernel" "$KVER"

# copy_modules ROOT NAMES...: the modules and their dependencies, then depmod
copy_modules() {
    local root=$1; shift
    local m f rel
    for m in "$@"; do
        modprobe -d "$WORK/kernel" -S "$KVER" --show-depends "$m" >"$WORK/deps" 2>&1 \
            || die "module $m: $(cat "$WORK/deps")"
        while read -r kind f _; do
            [ "$kind" = insmod ] || continue
            rel=${f#"$WORK/kernel"}
            mkdir -p "$root$(dirname "$rel")"
            cp "$f" "$root$rel"
        done <"$WORK/deps"
    done
    mkdir -p "$root/lib/modules/$KVER"
    cp "$WORK/kernel/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$KVER/"
    depmod -b "$root" "$KVER"
}

# --- dom0 root ------------------------------------------------------------
ROOT="$WORK/dom0"
log "mmdebstrap $SUITE minbase + $DOM0_PACKAGES"
mmdebstrap --variant=minbase --mode=root --include="$DOM0_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" "$ROOT" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
    "deb $SECMIRROR $SUITE-security main" </dev/null >"$WORK/mmdebstrap.log" 2>&1 \
    || { tail -30 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
got=$(chroot "$ROOT" dpkg-query -W -f='${Version}' xen-utils-4.17)
[ "$got" = "$XEN_VER" ] || die "dom0 got xen-utils-4.17 $got, hypervisor is $XEN_VER"
rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log
copy_modules "$ROOT" $DOM0_MODULES
# libraries present in the base, so the netbus layer can add what is missing
chroot "$ROOT" /sbin/ldconfig -p | awk '/=>/ {print $1}' | sort -u >"$OUT/dom0-libs.txt"

# --- guest base initramfs ---------------------------------------------------
G="$WORK/guest"
mkdir -p "$G"/{bin,sbin,usr/bin,usr/sbin,lib64,lib,dev,proc,sys,tmp,mnt,etc}
cp "$file_busybox" "$G/bin/busybox"
chroot "$G" /bin/busybox --install -s
copy_modules "$G" $GUEST_MODULES
# copy_bin SRC-ROOT PATH DEST-ROOT: a binary of dom0's root and its libraries
copy_bin() {
    local src=$1 path=$2 dst=$3 lib
    mkdir -p "$dst$(dirname "$path")"
    rm -f "$dst$path"     # may be a busybox link: never write through it
    cp -L "$src$path" "$dst$path"
    for lib in $(chroot "$src" /usr/bin/ldd "$path" | awk '/=> \// {print $3} /^\t\/lib64/ {print $1}'); do
        [ -e "$dst$lib" ] && continue
        mkdir -p "$dst$(dirname "$lib")"
        cp -L "$src$lib" "$dst$lib"
    done
}
copy_bin "$ROOT" /usr/bin/xenstore "$G"
for t in read write exists rm ls list watch chmod; do ln -sf xenstore "$G/usr/bin/xenstore-$t"; done
for b in /usr/sbin/mke2fs /usr/sbin/e2fsck; do copy_bin "$ROOT" "$b" "$G"; done
ln -sf mke2fs "$G/usr/sbin/mkfs.ext4"; ln -sf e2fsck "$G/usr/sbin/fsck.ext4"
cp "$ROOT/etc/mke2fs.conf" "$G/etc/" 2>/dev/null || true
mknod -m 600 "$G/dev/console" c 5 1
mknod -m 666 "$G/dev/null" c 1 3
mkdir -p "$ROOT/var/lib/netbus-rx"
( cd "$G" && find . | LC_ALL=C sort | cpio -o -H newc --quiet ) >"$ROOT/var/lib/netbus-rx/guest-base.cpio"
cp "$OUT/vmlinuz" "$ROOT/var/lib/netbus-rx/vmlinuz"

# --- pack dom0 --------------------------------------------------------------
rm -f "$ROOT/init"
( cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc --quiet ) >"$OUT/dom0-base.cpio"
cat >"$OUT/versions" <<EOV
xen-hypervisor-4.17-amd64 $XEN_VER
xen-utils-4.17 $UTILS_VER
$KPKG $KPKG_VER
kernel-release $KVER
busybox-static $BUSYBOX_VER
recipe $RECIPE
EOV
touch "$OUT/complete"
# drop images of other keys: one set is enough
for d in "$CACHE"/*/; do
    [ "${d%/}" = "$OUT" ] || { [ -f "$d/complete" ] && rm -rf "${d%/}"; } || true
done
log "done in $(( $(date +%s) - T0 )) s: $(du -sh "$OUT" | cut -f1) in $OUT"
[ "$PRINT_DIR" = 1 ] && echo "$OUT"
exit 0
