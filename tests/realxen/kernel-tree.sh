#!/usr/bin/env bash
# Download and unpack, once per kernel version, Debian's 6.1 kernel packages
# the realxen tier and the frontend patches need (never installed: nothing
# goes into the host's /boot or /lib/modules):
#   DIR/image/        linux-image-*-amd64 (boot/vmlinuz-*, lib/modules/*)
#   DIR/headers       the out-of-tree build tree (make -C DIR/headers M=...),
#                     linux-headers-*-{amd64,common} + linux-kbuild-6.1,
#                     its Makefile pointed at the unpacked -common tree
#   DIR/linux-source-6.1.tar.xz   from linux-source-6.1
#   DIR/release       the kernel release (e.g. 6.1.0-56-amd64)
# DIR is $CACHE/kernel-<package>-<version>; it is complete once DIR/unpacked
# exists. Other kernel-* folders are dropped when a new one is complete.
#
# Usage: tests/realxen/kernel-tree.sh [--print-dir]
# Environment: NETBUS_REALXEN_CACHE (default /var/cache/netbus-realxen)
set -euo pipefail

CACHE=${NETBUS_REALXEN_CACHE:-/var/cache/netbus-realxen}
PRINT_DIR=0
for a in "$@"; do
    case "$a" in
    --print-dir) PRINT_DIR=1 ;;
    *) echo "kernel-tree: unknown argument '$a'" >&2; exit 2 ;;
    esac
done
die() { echo "kernel-tree: ERROR: $*" >&2; exit 1; }
log() { echo "kernel-tree: $*" >&2; }

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$KPKG" ]; then
    log "apt lists do not know linux-image-amd64; running apt-get update"
    apt-get update -qq || die "apt-get update failed"
    KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 to a kernel package"
KVER_PKG=$(candidate "$KPKG")
ABI=${KPKG#linux-image-}              # 6.1.0-56-amd64
FLAVOUR=${ABI##*-}                    # amd64
COMMON=linux-headers-${ABI%-"$FLAVOUR"}-common
PKGS="$KPKG linux-headers-$ABI $COMMON linux-kbuild-6.1 linux-source-6.1"
for p in $PKGS; do
    [ "$(candidate "$p")" = "$KVER_PKG" ] || die "$p: candidate $(candidate "$p"), $KPKG is $KVER_PKG; they must match"
done
DIR=$CACHE/kernel-$KPKG-$KVER_PKG

mkdir -p "$CACHE"
exec 9>"$CACHE/.kernel-tree.lock"
flock 9     # one download at a time (make frontend-modules, build-images.sh)
if [ ! -f "$DIR/unpacked" ]; then
    log "downloading and unpacking $PKGS ($KVER_PKG) into $DIR"
    rm -rf "$DIR"
    W="$DIR.work"
    rm -rf "$W"
    mkdir -p "$W/debs" "$W/image" "$W/tree" "$W/src"
    ( cd "$W/debs" && apt-get download -q $(for p in $PKGS; do echo "$p=$KVER_PKG"; done) >/dev/null 2>&1 ) \
        || die "apt-get download of $PKGS failed"
    dpkg-deb -x "$W"/debs/"$KPKG"_*.deb "$W/image"
    for p in "linux-headers-$ABI" "$COMMON" linux-kbuild-6.1; do
        dpkg-deb -x "$W"/debs/"$p"_*.deb "$W/tree"
    done
    dpkg-deb -x "$W"/debs/linux-source-6.1_*.deb "$W/src"
    H=usr/src/linux-headers-$ABI
    [ -f "$W/tree/$H/Makefile" ] || die "no $H/Makefile in linux-headers-$ABI"
    # the amd64 tree includes the -common tree's Makefile by absolute path
    sed -i "s|^include /usr/src/|include $DIR/tree/usr/src/|" "$W/tree/$H/Makefile"
    ln -s "tree/$H" "$W/headers"
    mv "$W"/src/usr/src/linux-source-6.1.tar.xz "$W/"
    ls "$W/image/lib/modules" >"$W/release"
    rm -rf "$W/debs" "$W/src"
    mv "$W" "$DIR"
    touch "$DIR/unpacked"
    for d in "$CACHE"/kernel-*/; do
        [ "${d%/}" = "$DIR" ] || rm -rf "${d%/}"
    done
    log "done: $(du -sh "$DIR" | cut -f1) in $DIR"
fi
[ "$PRINT_DIR" = 1 ] && echo "$DIR"
exit 0
