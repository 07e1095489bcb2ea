#!/usr/bin/env bash
# Boot Xen + dom0 in QEMU (software emulation) and run scenarios in dom0.
# Usage: tests/realxen/run-scenario.sh [-t SECS] BUILD SCENARIO[,SCENARIO...]
#   BUILD     build dir holding netbusd, netbusctl, xensim (e.g. build), and
#             frontend/xen-hcd.ko (make frontend-modules) for the guests
#   SCENARIO  names of tests/realxen/scenarios/*.sh, run in one boot
# Prints the MARK/RESULT lines as they come; the whole serial console goes
# to BUILD/realxen/<scenarios>.log. Exits non-zero on any RESULT FAIL, on a
# scenario that printed no RESULT, on a missing end marker, or on timeout.
# Environment: NETBUS_REALXEN_CACHE (see build-images.sh),
#   NETBUS_REALXEN_TIMEOUT (default 900 s for the whole QEMU run),
#   NETBUS_REALXEN_MIGRATIONS (live migrations in scenario migrate, default 3),
#   NETBUS_REALXEN_NETBUSD_LOG (netbusd's --log-level in dom0, default debug),
#   NETBUS_REALXEN_GUEST_EXTRA (more kernel arguments for the guests),
#   NETBUS_REALXEN_CPU (QEMU's -cpu, see below).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TIMEOUT=${NETBUS_REALXEN_TIMEOUT:-900}
if [ "${1:-}" = -t ]; then TIMEOUT=$2; shift 2; fi
[ $# = 2 ] || { echo "usage: $0 [-t SECS] BUILD SCENARIO[,SCENARIO...]" >&2; exit 2; }
BUILD=$1
SCEN=$2
die() { echo "run-scenario: ERROR: $*" >&2; exit 1; }

for s in ${SCEN//,/ }; do
    [ -f "$HERE/scenarios/$s.sh" ] || die "no scenario tests/realxen/scenarios/$s.sh"
done
for p in netbusd netbusctl xensim; do
    [ -x "$BUILD/$p" ] || die "$BUILD/$p not built (make BUILD=$BUILD $BUILD/$p)"
done
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: install tests/realxen/host-packages"

IMGDIR=$("$HERE/build-images.sh" --print-dir | tail -1)
[ -f "$IMGDIR/complete" ] || die "no images in '$IMGDIR'"

OUT="$BUILD/realxen"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
NAME=${SCEN//,/+}
LOG="$OUT/$NAME.log"
L="$OUT/layer-$NAME"
rm -rf "$L"
mkdir -p "$L/usr/local/sbin" "$L/usr/local/bin" "$L/usr/local/lib" "$L/etc/xen/scripts" \
         "$L/etc/netbus-rx/scenarios" "$L/etc/ld.so.conf.d"

# --- this tree's programs, and any library the base image lacks ------------
install -m 755 "$BUILD/netbusd" "$BUILD/netbusctl" "$L/usr/local/sbin/"
install -m 755 "$BUILD/xensim" "$L/usr/local/bin/"
[ -x "$BUILD/xenfront" ] && install -m 755 "$BUILD/xenfront" "$L/usr/local/bin/"
for bin in "$L"/usr/local/sbin/* "$L"/usr/local/bin/*; do
    ldd "$bin" | awk '/=> \// {print $1, $3}'
done | sort -u | while read -r soname path; do
    grep -qx "$soname" "$IMGDIR/dom0-libs.txt" && continue
    echo "run-scenario: adding $soname (not in the dom0 base image)" >&2
    cp -L "$path" "$L/usr/local/lib/$soname"
done
echo /usr/local/lib >"$L/etc/ld.so.conf.d/netbus-rx.conf"
install -m 755 "$REPO/tools/hotplug/netbus-block" "$L/etc/xen/scripts/"

# --- dom0 /init, harness, scenarios; the guest layer ---------------------
install -m 755 "$HERE/dom0/init" "$L/init"
install -m 755 "$HERE/dom0/run-in-dom0" "$HERE/dom0/standin-vbd-backend" "$HERE/dom0/standin-vusb-backend" \
    "$L/etc/netbus-rx/"
install -m 644 "$HERE/dom0/lib.sh" "$HERE/dom0/guest-io.sh" "$L/etc/netbus-rx/"
install -m 644 "$HERE"/scenarios/*.sh "$L/etc/netbus-rx/scenarios/"
# settings for the scenarios in dom0 (lib.sh sources this file)
{
    printf 'RX_MIGRATIONS=%q\n' "${NETBUS_REALXEN_MIGRATIONS:-3}"
    printf 'RX_NETBUSD_LOG_LEVEL=%q\n' "${NETBUS_REALXEN_NETBUSD_LOG:-debug}"
    printf 'RX_GUEST_EXTRA=%q\n' "${NETBUS_REALXEN_GUEST_EXTRA:-}"
} >"$L/etc/netbus-rx/env"
G="$OUT/guest-layer"
rm -rf "$G"; mkdir -p "$G"
install -m 755 "$HERE/guest/init" "$G/init"
mkdir -p "$G/bin"
install -m 755 "$HERE/guest/rx" "$G/bin/rx"
# the patched xen-hcd (frontend-patches/linux); guest/init loads it
KREL=$(awk '/^kernel-release / {print $2}' "$IMGDIR/versions")
XENHCD=$BUILD/frontend/xen-hcd.ko
if [ -f "$XENHCD" ]; then
    built_for=$(modinfo -F vermagic "$XENHCD" | cut -d' ' -f1)
    [ "$built_for" = "$KREL" ] \
        || die "$XENHCD is built for $built_for, the guest kernel is $KREL (make BUILD=$BUILD frontend-modules)"
    install -D -m 644 "$XENHCD" "$G/lib/modules/$KREL/extra/xen-hcd.ko"
    # its GNU build id tells the guest's loaded module is this build
    id=$(readelf -n "$XENHCD" | awk '/Build ID:/ {print $3; exit}')
    [ -n "$id" ] || die "$XENHCD has no build id"
    printf 'RX_XENHCD_BUILD_ID=%q\n' "$id" >>"$L/etc/netbus-rx/env"
else
    echo "run-scenario: no $XENHCD (make BUILD=$BUILD frontend-modules): guests have no xen-hcd" >&2
fi
( cd "$G" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 ) >"$L/etc/netbus-rx/guest-layer.cpio"
( cd "$L" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 ) >"$OUT/layer.cpio"
# The kernel unpacks concatenated cpio archives in order: the layer's files
# override the base's.
cat "$IMGDIR/dom0-base.cpio" "$OUT/layer.cpio" >"$OUT/dom0.cpio"

# --- boot ---------------------------------------------------------------
# -smap/-smep: dom0 crashes otherwise; -rdtscp: PVH guests crash otherwise
# (REALXEN.md). -avx,...: QEMU 7.2's new TCG AVX emulation; with it, glibc's
# AVX2 string functions made userspace in dom0 corrupt memory now and then.
# -xsave (takes xsaveopt, xgetbv1 and the guests' pku along): with XSAVE,
# user programs in dom0 and in a PVH guest went wrong while the guest did
# disk I/O: bash/xl/xenstore-write segfaults in libc, busybox grep miscounting
# lines of a file it had just written, xl dying during live migrations (and,
# we take it, the guest writer's I/O errors across a migration). Scenario
# memcheck shows it: with XSAVE, 8 of 35 passes of the guest's check failed in
# 2 runs while netbusd served its disk writer; without XSAVE none of 15; with
# no disk I/O none either way. Without XSAVE, Xen and Linux use FXSAVE.
CPU=${NETBUS_REALXEN_CPU:-max,-smap,-smep,-rdtscp,-avx,-avx2,-fma,-f16c,-xsave}
XEN_ARGS="console=com1 com1=115200,8n1 dom0_mem=1536M,max:1536M dom0_max_vcpus=2 bootscrub=false noreboot"
DOM0_ARGS="console=hvc0 earlyprintk=xen rdinit=/init loglevel=4 netbus_rx=${SCEN//,/+}"  # QEMU splits modules at commas
# Scenario usb passes an emulated USB stick and keyboard of dom0's xHCI to a
# guest. The stick runs at SuperSpeed on the xHCI's USB 3 port; netbusd
# shows it to the guest as a high-speed device (usbif stops at USB 2). The
# keyboard is typed on through QMP by qmp-keys.pl when dom0
# asks for it on the console.
USB_ARGS=()
KEYS_PID=
if [[ ",$SCEN," == *,usb,* ]]; then
    rm -f "$OUT/usb-stick.img" "$OUT/qmp.sock"; truncate -s 64M "$OUT/usb-stick.img"
    USB_ARGS=(-device qemu-xhci,id=xhci -drive "if=none,id=stick,file=$OUT/usb-stick.img,format=raw"
              -device usb-storage,bus=xhci.0,drive=stick -device usb-kbd,bus=xhci.0
              -qmp "unix:$OUT/qmp.sock,server=on,wait=off")
    : >"$LOG"
    perl "$HERE/qmp-keys.pl" "$LOG" "$OUT/qmp.sock" &
    KEYS_PID=$!
fi
echo "run-scenario: booting Xen + dom0 for '$SCEN' (timeout $TIMEOUT s, log $LOG)"
T0=$(date +%s)
set +e
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
    -machine q35 -accel tcg,thread=multi -cpu "$CPU" -smp 2 -m 3G \
    -display none -monitor none -serial stdio -no-reboot \
    -kernel "$IMGDIR/xen" -append "$XEN_ARGS" \
    -initrd "$IMGDIR/vmlinuz $DOM0_ARGS,$OUT/dom0.cpio" \
    "${USB_ARGS[@]}" \
    </dev/null 2>&1 | stdbuf -oL tr -d '\r' | tee "$LOG" | grep --line-buffered -aE '^(MARK|RESULT|INIT|SCENARIO-END)|RESULT (PASS|FAIL|SKIP)|panic|Panic|crashed'
QRC=${PIPESTATUS[0]}
[ -z "$KEYS_PID" ] || kill "$KEYS_PID" 2>/dev/null
set -e
DT=$(( $(date +%s) - T0 ))

# --- verdict --------------------------------------------------------------
pass=$(grep -acE '^RESULT PASS ' "$LOG" || true)
fail=$(grep -acE '^RESULT FAIL ' "$LOG" || true)
skipped=$(grep -acE '^RESULT SKIP ' "$LOG" || true)
bad=0
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
    echo "run-scenario: FAIL: QEMU timed out after $TIMEOUT s"; bad=1
elif ! grep -aq '^SCENARIO-END' "$LOG"; then
    echo "run-scenario: FAIL: no SCENARIO-END marker (dom0 crashed or hung; QEMU exit $QRC)"; bad=1
fi
if [ "$pass" = 0 ] && [ "$fail" = 0 ] && [ "$skipped" = 0 ]; then
    echo "run-scenario: FAIL: no RESULT line at all"; bad=1
fi
[ "$fail" = 0 ] || bad=1
# a check that could not run fails the run too, after saying why
grep -aE '^RESULT SKIP ' "$LOG" | sed 's/^/run-scenario: NOT RUN: /' || true
[ "$skipped" = 0 ] || bad=1
echo "run-scenario: '$SCEN': $pass passed, $fail failed, $skipped skipped, QEMU ran $DT s (log $LOG)"
exit $bad
