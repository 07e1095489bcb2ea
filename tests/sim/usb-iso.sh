#!/usr/bin/env bash
# sim tier: isochronous USB end to end, on one host and through the netbus
# channel. nb-iso (tests/usbdev, bus id 1-3: alternate setting 1 streams
# isochronous IN packets numbered in sequence and counts and checksums
# isochronous OUT packets) is served by a netbusd running under usbdev.
#
# Local: a guest gets a PV USB controller with nb-iso on port 1 (xensim
# usbctrl-attach, usbdev-attach) and the reference usbfront runs `xenfront
# usb iso`: SET_INTERFACE alt 1, isochronous IN URBs whose packets (full,
# short, 3-byte and empty ones, descriptors in their own granted segment)
# must each come back whole with the next sequence number and the device's
# pattern, OUT URBs, then the device's packet, byte and checksum counters
# must equal what completed; also read from outside through usbdev's
# control socket. With 1 (an empty URB among them), 8, 64 and 128 packets
# a URB; with the data at an offset of its first page (mapped as it is);
# and scattered, at an offset of every page (not one run of bytes: the
# backend bounces it), down to 196 bytes a page.
#
# Remote (`xensim cluster`, hosts a and b in network namespaces): a exports
# nb-iso (`netbusctl export iso usb:1-3`), a guest on b has a port naming
# netbus://a/iso, and the same runs go through the channel (URB frames
# with packet descriptors, replies with per-packet results and the whole
# IN buffer). Then one long stream during which b's connection to a is
# killed twice (ss -K), once in the IN part and once in the OUT part: it
# must end ok, its IN sequence numbers continuous (no packet seen twice or
# lost) and a's device counters equal to what the guest saw complete
# (every URB executed once). Then one more stream while the guest migrates
# b -> a -> b: same checks, and every URB drained at the suspends (none
# unlinked). Every netbusd exits 0 on SIGTERM.
# Needs root for the namespaces. KEEP=1 keeps the scratch directory.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
base=${build%/san}
for b in "$build/xensim" "$build/netbusd" "$build/netbusctl" "$build/xenfront" "$base/usbdev"; do
    [ -x "$b" ] || { echo "usb-iso: $b is not built"; exit 1; }
done
xensim=$(realpath "$build/xensim") netbusd=$(realpath "$build/netbusd")
netbusctl=$(realpath "$build/netbusctl") xenfront=$(realpath "$build/xenfront")
usbdev=$(realpath "$base/usbdev")
. "$(dirname "$0")/lib/cluster.sh"
cluster_start usb-iso nbiso

# From outside: OUT packets, OUT bytes, IN packets, IN bytes (and OUT sum).
stats() { "$usbdev" --control "$ctl" --tell "stats nb-iso"; }
# The first four counters of $2 minus those of $1.
delta() { paste -d' ' <(tr ' ' '\n' <<<"$1" | head -4) <(tr ' ' '\n' <<<"$2" | head -4) | awk '{print $2 - $1}' | paste -sd' '; }
# What `xenfront usb iso` saw complete, in the counters' order.
completed() { sed -n 's/.*in_packets=\([0-9]*\) in_bytes=\([0-9]*\) out_packets=\([0-9]*\) out_bytes=\([0-9]*\).*/\3 \4 \1 \2/p' "$1"; }

# check_iso NAME URBS PACKETS BEFORE OUTPUT: the run's result line and
# the device's counters since BEFORE.
check_iso() {
    local name=$1 urbs=$2 packets=$3 before=$4 out=$5 in0
    in0=$(cut -d' ' -f3 <<<"$before")
    check "$name: every URB and packet completed and checked" \
        "result=ok in_urbs=$urbs out_urbs=$urbs in_packets=$packets out_packets=$packets" \
        "$(grep -o 'result=[a-zA-Z]*\|in_urbs=[0-9]*\|out_urbs=[0-9]*\|in_packets=[0-9]*\|out_packets=[0-9]*' "$out" | paste -sd' ')"
    check "$name: IN sequence numbers continue the device's" \
        "first_seq=$in0 last_seq=$((in0 + packets - 1))" \
        "$(grep -o 'first_seq=[0-9]* last_seq=[0-9]*' "$out")"
    check "$name: device counters from outside = what the guest saw complete" \
        "$(completed "$out")" "$(delta "$before" "$(stats)")"
}
run_iso() { # name expected-urbs expected-packets options...
    local name=$1 urbs=$2 packets=$3; shift 3
    local before
    before=$(stats)
    status_is "usb iso: $name" 0 run_fe iso --port 1 "$@"
    cp "$dir/last.out" "$dir/iso.out"
    check_iso "$name" "$urbs" "$packets" "$before" "$dir/iso.out"
}
# The runs both legs make.
iso_runs() { # prefix
    run_iso "${1}8+8 URBs of 8 packets" 8 64 --count 8 --packets 8
    run_iso "${1}URBs of 1 packet, one of them empty" 8 8 --count 8 --packets 1 --queue 3
    run_iso "${1}20+20 URBs of 64 packets, 6 in flight" 20 1280 --count 20 --packets 64 --queue 6
    run_iso "${1}4+4 URBs of 128 packets" 4 512 --count 4 --packets 128
    run_iso "${1}data at offset 3000 of its first page" 12 384 --count 12 --packets 32 --page-offset 3000
    run_iso "${1}scattered: at offset 1000 of every page" 12 768 --count 12 --packets 64 --queue 5 \
        --page-offset 1000 --scatter
    run_iso "${1}scattered: 196 bytes a page, packets across 6 pages" 16 32 --count 16 --packets 2 \
        --page-offset 3900 --scatter
}

# --- local: one host, netbusd's libusb target ------------------------------------------
L=$dir/local ctl=$dir/usbdev-local.ctl
"$xensim" host --dir "$L" --log-level warn 2>"$dir/host-local.log" &
pids+=($!)
"$xensim" wait --dir "$L" --timeout 10
"$usbdev" --iso --control "$ctl" -- \
    "$netbusd" --xensim-dir "$L" --log-level info 2>"$dir/netbusd-local.log" &
nb_local=$!
pids+=($nb_local)
wait_for 10 stats || { echo "usb-iso: usbdev does not answer"; exit 1; }

g=$("$xensim" create --dir "$L" --name g --memory 128)
status_is "usbctrl-attach" 0 "$xensim" usbctrl-attach --dir "$L" g
status_is "usbdev-attach nb-iso (1-3)" 0 "$xensim" usbdev-attach --dir "$L" g 1-3
check "nb-iso on controller 0 port 1" "0 1" "$(cat "$dir/last.out")"
run_fe() { "$xensim" run --dir "$L" --domid "$g" -- "$xenfront" usb "$@"; }
status_is "usb iso: --port missing" 2 run_fe iso
status_is "usb iso: 128 packets at offset 3500 leave no segment for the descriptors" 2 \
    run_fe iso --port 1 --packets 128 --page-offset 3500
iso_runs ""
"$xensim" destroy --dir "$L" g >/dev/null 2>&1 || true
netbusd_stops "local netbusd" "$nb_local" 30

# --- remote: a exports nb-iso, a guest on b uses it ----------------------------------------
port=7798
printf '# cluster key\n* %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/keys"
chmod 600 "$dir/keys"
cl up --hosts a,b --timeout 60 >"$dir/up.out"
addr_a=$(cl addr a)
ctl=$dir/usbdev-a.ctl
"$xensim" cluster exec --dir "$dir" a -- "$usbdev" --iso --control "$ctl" -- \
    "$netbusd" --xensim-dir "$dir/a" --name a --keys "$dir/keys" --log-level info \
    --listen "$addr_a:$port" >>"$dir/a/netbusd.log" 2>&1 &
nb_a=$!
pids+=($nb_a)
# b's notices a lost connection within its 300 ms keepalive.
"$xensim" cluster exec --dir "$dir" b -- "$netbusd" --xensim-dir "$dir/b" --name b \
    --keys "$dir/keys" --log-level info --listen off --keepalive-ms 300 \
    --reconnect-max-ms 400 >>"$dir/b/netbusd.log" 2>&1 &
nb_b=$!
pids+=($nb_b)
wait_listening usb-iso a "$addr_a" "$port" || exit 1
wait_for 10 stats || { echo "usb-iso: usbdev on a does not answer"; exit 1; }
status_is "a: export iso usb:1-3" 0 on a "$netbusctl" export iso usb:1-3
url="netbus://$addr_a:$port/iso"
on b "$xensim" create --name g --memory 128 >/dev/null
status_is "b: usbctrl-attach" 0 on b "$xensim" usbctrl-attach g
status_is "b: usbdev-attach $url" 0 on b "$xensim" usbdev-attach g "$url"
check "nb-iso on controller 0 port 1" "0 1" "$(cat "$dir/last.out")"
gd=$(on b "$xensim" list | awk '$2=="g" {print $1}')
run_fe() { on b "$xensim" run --domid "$gd" -- "$xenfront" usb "$@"; }
iso_runs "remote: "

# A long stream; b's connection to a is killed once a's device has
# delivered 800 IN packets of it and once it has taken 800 OUT packets.
conn_losses() { grep -c 'connection to the export lost' "$dir/b/netbusd.log" || true; }
kill_conn() { # what
    local lost=$(conn_losses)
    status_is "ss -K in b's namespace ($1)" 0 on b ss -K dst "$addr_a" dport = ":$port"
    check "ss killed a connection ($1)" "yes" "$(yes_no grep -q "$addr_a:$port" "$dir/last.out")"
    wait_for 5 eval '[ "$(conn_losses)" -gt "$lost" ]' || true
    check "b noticed the killed connection ($1)" "yes" "$(yes_no [ "$(conn_losses)" -gt "$lost" ])"
}
past() { # counter-index packets: a's device counted that many since $before
    [ "$(($(stats | cut -d' ' -f"$1") - $(cut -d' ' -f"$1" <<<"$before")))" -ge "$2" ]
}
# stream NAME TAG STEP ARG-IN ARG-OUT: a stream of 250 URBs of 16 packets
# each way; `STEP ARG-IN` runs once a's device has delivered 800 IN packets
# of it, `STEP ARG-OUT` once it has taken 800 OUT packets. Its output goes
# to $dir/TAG.out.
stream() {
    local name=$1 out=$dir/$2.out err=$dir/$2.err fpid rc=0
    before=$(stats)
    run_fe iso --port 1 --count 250 --packets 16 --queue 4 --timeout 30 >"$out" 2>"$err" &
    fpid=$!
    pids+=($fpid)
    wait_for 20 past 3 800 || true
    "$3" "$4"
    wait_for 30 past 1 800 || true
    "$3" "$5"
    wait "$fpid" || rc=$?
    check "$name: the stream exits 0" 0 "$rc"
    [ "$rc" == 0 ] || sed 's/^/     /' "$out" "$err" | tail -10
    check_iso "$name" 250 4000 "$before" "$out"
}
stream "killed connections" kill kill_conn "IN stream" "OUT stream"
check "b resent or awaited URBs after a loss" "yes" \
    "$(yes_no grep -q 'connection to the export lost .*: [1-9][0-9]* transfer(s) wait' "$dir/b/netbusd.log")"
check "a kept one session for the guest throughout" "1" \
    "$(grep -c 'exports/iso: session [0-9]* opened by b' "$dir/a/netbusd.log" || true)"

# A stream across two migrations, b -> a -> b: at each suspend the guest
# drains its isochronous URBs (they last 16 ms) and the new controller
# finds the export's device as it was, in alternate setting 1.
host_g=b
migrate_g() { # to
    local t rc=0
    t=$("$xensim" migrate --dir "$dir/$host_g" g --to "$dir/$1" --timeout 30 2>&1 >/dev/null) || rc=$?
    check "migrate g $host_g -> $1 during the stream (${t#xensim migrate: })" 0 "$rc"
    [ "$rc" == 0 ] && host_g=$1
    check "$1 has nb-iso's export on port 1" "$url" \
        "$(on "$1" xenstore-read "/local/domain/0/backend/vusb/$(on "$1" "$xensim" list | awk '$2=="g" {print $1}')/0/port/1")"
}
stream "across migrations" mig migrate_g a b
check "migrated twice, each URB drained (none unlinked)" "suspends=2 migrations=2 drain_unlinked=0" \
    "$(grep -o 'suspends=[0-9]* migrations=[0-9]* drain_unlinked=[0-9]*' "$dir/mig.out")"

on "$host_g" "$xensim" destroy g >/dev/null 2>&1 || true
netbusd_stops "netbusd on a" "$nb_a" 30
netbusd_stops "netbusd on b" "$nb_b" 30
check "no netbusd logged a refused isochronous request" 0 \
    "$(cat "$dir/netbusd-local.log" "$dir/a/netbusd.log" "$dir/b/netbusd.log" | grep -ci 'isochronous' || true)"
no_sanitizer_reports "in netbusd's logs" "$dir/netbusd-local.log" "$dir/a/netbusd.log" "$dir/b/netbusd.log"
no_sanitizer_reports "in the guests" "$dir"/*.err "$dir/last.out"
if [ "$fail" -ne 0 ]; then
    for h in a b; do echo "--- netbusd on $h (last 25 lines)"; tail -25 "$dir/$h/netbusd.log"; done
fi
echo "usb-iso: $(($(date +%s) - t_start)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
