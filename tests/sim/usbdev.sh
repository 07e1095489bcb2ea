#!/usr/bin/env bash
# sim tier: unmodified libusb-1.0 against the emulated netbus test USB
# devices (tests/usbdev): usbdev-check, built plain and with ASan+UBSan, runs
# under build/usbdev with both devices and the control socket: descriptors,
# kernel driver detach/claim, 1000 verified bulk loopback transfers with the
# device's counters checked through libusb and from outside, 50 paced HID
# reports, a discarded IN, FIFO back-pressure, and an unplug/replug seen by a
# hotplug callback. Then usbdev's own contract: exit status, signals, the
# control socket's errors.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
base=${build%/san}
usbdev=$base/usbdev
dir=$(mktemp -d "${TMPDIR:-/tmp}/netbus-sim-XXXXXX")
trap stop_all EXIT

# Runs a checker under usbdev and folds its ok/FAIL lines into ours.
run_check() { # name checker
    local name=$1 rc=0
    "$usbdev" --bulk --hid --iso --control "$dir/$name.ctl" -- "$2" >"$dir/$name.out" 2>"$dir/$name.err" || rc=$?
    sed "s/^\(ok  \|FAIL\) /\1 $name: /" "$dir/$name.out" | grep -E '^(ok|FAIL) '
    pass=$((pass + $(grep -c '^ok ' "$dir/$name.out" || true)))
    fail=$((fail + $(grep -c '^FAIL ' "$dir/$name.out" || true)))
    check "$name: usbdev-check exits 0 under usbdev" 0 "$rc"
    [ "$rc" == 0 ] || sed 's/^/     /' "$dir/$name.err" | tail -20
    no_sanitizer_reports "$name" "$dir/$name.out" "$dir/$name.err"
}

run_check plain "$base/usbdev-check"
# usbdev adds verify_asan_link_order=0: ASan's runtime is not first in the
# library list once the umockdev preload is (tests/usbdev/README.md).
ASAN_OPTIONS=detect_leaks=1 run_check sanitized "$base/san/usbdev-check"

# The counters from outside, after the wrapped program is done with the
# device: the check ends on one 100-byte loopback on the replugged nb-bulk.
got=$("$usbdev" --bulk --hid --iso --control "$dir/c.ctl" -- bash -c \
    '"$1" >/dev/null && "$2" --control "$USBDEV_CONTROL" --tell "stats nb-bulk"' \
    _ "$base/usbdev-check" "$usbdev" 2>"$dir/stats.err" || true)
check "stats over the control socket after the run" "1 100 1 100" "$got"

status_is "usbdev exits with the command's status" 3 "$usbdev" --bulk -- sh -c 'exit 3'
status_is "the command sees UMOCKDEV_DIR and the preload" 0 "$usbdev" --hid -- \
    sh -c 'test -d "$UMOCKDEV_DIR" && case $LD_PRELOAD in libumockdev-preload.so.0*) ;; *) exit 1;; esac'
status_is "the device node is a FIFO under the testbed's /dev" 0 "$usbdev" --bulk -- \
    sh -c 'test -p "$UMOCKDEV_DIR/dev/bus/usb/001/002"'
fails "usbdev without a command" "$usbdev" --bulk --
fails "usbdev with an unknown option" "$usbdev" --usb3 -- true

"$usbdev" --bulk --control "$dir/t.ctl" -- sleep 30 >/dev/null 2>&1 &
upid=$!
pids+=("$upid")
for _ in $(seq 100); do [ -S "$dir/t.ctl" ] && break; sleep 0.05; done
fails "control: unknown device refused" "$usbdev" --control "$dir/t.ctl" --tell "unplug nb-nothing"
fails "control: unplugging twice refused" bash -c \
    "'$usbdev' --control '$dir/t.ctl' --tell 'unplug nb-bulk' && '$usbdev' --control '$dir/t.ctl' --tell 'unplug nb-bulk'"
check "control: stats of an unplugged device" "error not plugged" \
    "$("$usbdev" --control "$dir/t.ctl" --tell 'stats nb-bulk' || true)"
kill -TERM "$upid"
rc=0
wait "$upid" || rc=$?
check "SIGTERM reaches the command (exit 143)" 143 "$rc"
check "the control socket is removed at exit" "gone" "$([ -e "$dir/t.ctl" ] && echo there || echo gone)"

echo "$pass passed, $fail failed"
[ "$fail" == 0 ]
