#!/usr/bin/env bash
# sim tier: isochronous USB end to end. netbusd runs under usbdev with the
# nb-iso device (tests/usbdev, bus id 1-3: alternate setting 1 streams
# isochronous IN packets numbered in sequence and counts and checksums
# isochronous OUT packets). A guest gets a PV USB controller with nb-iso on
# port 1 (xensim usbctrl-attach, usbdev-attach) and the reference usbfront
# runs `xenfront usb iso`: SET_INTERFACE alt 1, isochronous IN URBs whose
# packets (full, short, 3-byte and empty ones, descriptors in their own
# granted segment) must each come back whole with the next sequence number
# and the device's pattern, OUT URBs, then the device's packet, byte and
# checksum counters must equal what completed; also read from outside
# through usbdev's control socket. Then with 64-packet URBs, 4 in flight.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
base=${build%/san}
xensim=$build/xensim netbusd=$build/netbusd xenfront=$build/xenfront
usbdev=$base/usbdev
for b in "$xensim" "$netbusd" "$xenfront" "$usbdev"; do
    [ -x "$b" ] || { echo "usb-iso: $b is not built"; exit 1; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/netbus-usbiso-XXXXXX")
trap stop_all EXIT

A=$dir/A
"$xensim" host --dir "$A" --log-level warn 2>"$dir/host-A.log" &
pids+=($!)
"$xensim" wait --dir "$A" --timeout 10
"$usbdev" --iso --control "$dir/usbdev.ctl" -- \
    "$netbusd" --xensim-dir "$A" --log-level info 2>"$dir/netbusd-A.log" &
pids+=($!)
tell() { "$usbdev" --control "$dir/usbdev.ctl" --tell "$1"; }
for _ in $(seq 100); do tell "stats nb-iso" >/dev/null 2>&1 && break; sleep 0.1; done

g=$("$xensim" create --dir "$A" --name g --memory 128)
status_is "usbctrl-attach" 0 "$xensim" usbctrl-attach --dir "$A" g
status_is "usbdev-attach nb-iso (1-3)" 0 "$xensim" usbdev-attach --dir "$A" g 1-3
check "nb-iso on controller 0 port 1" "0 1" "$(cat "$dir/last.out")"

run_fe() { "$xensim" run --dir "$A" --domid "$g" -- "$xenfront" usb "$@"; }
# From outside: OUT packets, OUT bytes, IN packets, IN bytes (and OUT sum).
stats() { tell "stats nb-iso"; }
# The first four counters of $2 minus those of $1.
delta() { paste -d' ' <(tr ' ' '\n' <<<"$1" | head -4) <(tr ' ' '\n' <<<"$2" | head -4) | awk '{print $2 - $1}' | paste -sd' '; }
# What `xenfront usb iso` saw complete, in the counters' order.
completed() { sed -n 's/.*in_packets=\([0-9]*\) in_bytes=\([0-9]*\) out_packets=\([0-9]*\) out_bytes=\([0-9]*\).*/\3 \4 \1 \2/p' "$1"; }

run_iso() { # name expected-urbs expected-packets options...
    local name=$1 urbs=$2 packets=$3; shift 3
    local before after in0
    before=$(stats)
    in0=$(cut -d' ' -f3 <<<"$before")
    status_is "usb iso: $name" 0 run_fe iso --port 1 "$@"
    cp "$dir/last.out" "$dir/iso.out"
    check "$name: every URB and packet completed and checked" \
        "result=ok in_urbs=$urbs out_urbs=$urbs in_packets=$packets out_packets=$packets" \
        "$(grep -o 'result=[a-zA-Z]*\|in_urbs=[0-9]*\|out_urbs=[0-9]*\|in_packets=[0-9]*\|out_packets=[0-9]*' "$dir/iso.out" | paste -sd' ')"
    check "$name: IN sequence numbers continue the device's" \
        "first_seq=$in0 last_seq=$((in0 + packets - 1))" \
        "$(grep -o 'first_seq=[0-9]* last_seq=[0-9]*' "$dir/iso.out")"
    after=$(stats)
    check "$name: device counters from outside = what the guest saw complete" \
        "$(completed "$dir/iso.out")" "$(delta "$before" "$after")"
}

status_is "usb iso: --port missing" 2 run_fe iso
run_iso "8+8 URBs of 8 packets" 8 64 --count 8 --packets 8
run_iso "20+20 URBs of 64 packets, 6 in flight" 20 1280 --count 20 --packets 64 --queue 6
run_iso "4+4 URBs of 128 packets" 4 512 --count 4 --packets 128
check "netbusd logged no refused isochronous request" 0 "$(grep -ci 'isochronous' "$dir/netbusd-A.log" || true)"
no_sanitizer_reports "in netbusd's log" "$dir/netbusd-A.log"

echo "$pass passed, $fail failed"
[ "$fail" == 0 ]
