#!/usr/bin/env bash
# sim tier: PV USB end to end with the emulated test devices (tests/usbdev:
# nb-bulk on bus id 1-1, nb-hid on 1-2). Two xensim hosts on one machine,
# each with its own netbusd; both netbusds run under one usbdev, so both
# hosts see the same two devices (as two hosts would see a device on a
# shared hub: only one claims it at a time). A guest on A gets a PV USB
# controller and both devices the way xl does (xensim usbctrl-attach,
# usbdev-attach); the toolstack's xenstore layout and its answers to wrong
# input are checked. The reference usbfront (xenfront usb) then lists the
# ports and enumerates both devices, reads HID reports in sequence, and
# streams verified bulk loopback transfers for USB_VERIFY_SECONDS, and a
# second frontend on a second controller reads HID reports, while the
# guest migrates from A to B in the middle: the frontends drain their URBs
# at the suspend (the HID reader unlinks its pending interrupt INs), A's
# backend quiesces and lets the devices go; migrate recreates the
# controllers with their ports on B, whose backend claims each device and
# adopts the address the guest gave it, and the stream carries on. Every byte is checked; the device's counters,
# read through the guest and from outside (usbdev's control socket), must
# equal the transfers the guest saw complete: none lost, none run twice.
# HID report numbers must continue across the move. Then detach. Last, a
# guest saved and restored (suspend, destroy, create with its UUID) gets
# back the device netbusctl put on its port.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
base=${build%/san}
xensim=$build/xensim netbusd=$build/netbusd xenfront=$build/xenfront
netbusctl=$build/netbusctl
usbdev=$base/usbdev
SECS=${USB_VERIFY_SECONDS:-20}
for b in "$xensim" "$netbusd" "$netbusctl" "$xenfront" "$usbdev"; do
    [ -x "$b" ] || { echo "usb-local: $b is not built"; exit 1; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/netbus-usb-XXXXXX")
trap stop_all EXIT

A=$dir/A B=$dir/B
for h in A B; do
    "$xensim" host --dir "$dir/$h" --log-level warn 2>"$dir/host-$h.log" &
    pids+=($!)
done
for h in A B; do "$xensim" wait --dir "$dir/$h" --timeout 10; done
# Both netbusds under one usbdev; their pids come back through a file so
# each can be stopped (and checked) on its own before usbdev exits.
"$usbdev" --bulk --hid --control "$dir/usbdev.ctl" -- bash -c '
    "$1" --xensim-dir "$2" --log-level info 2>"$4" & a=$!
    "$1" --xensim-dir "$3" --log-level info 2>"$5" & b=$!
    echo "$a $b" >"$6.tmp" && mv "$6.tmp" "$6"
    trap "kill $a $b 2>/dev/null" TERM
    wait $a; ra=$?; wait $b; rb=$?
    exit $((ra | rb))' _ "$netbusd" "$A" "$B" "$dir/netbusd-A.log" \
    "$dir/netbusd-B.log" "$dir/netbusd.pids" 2>"$dir/usbdev.log" &
usbdev_pid=$!
pids+=($usbdev_pid)
for _ in $(seq 100); do [ -s "$dir/netbusd.pids" ] && break; sleep 0.1; done
read -r nb_a nb_b <"$dir/netbusd.pids"
tell() { "$usbdev" --control "$dir/usbdev.ctl" --tell "$1"; }
for _ in $(seq 100); do tell "stats nb-bulk" >/dev/null 2>&1 && break; sleep 0.1; done

g=$("$xensim" create --dir "$A" --name g --memory 128)

# --- the toolstack ------------------------------------------------------------
status_is "usbctrl-attach" 0 "$xensim" usbctrl-attach --dir "$A" g
check "usbctrl-attach prints devid 0" 0 "$(cat "$dir/last.out")"
be=/local/domain/0/backend/vusb/$g/0
fe=/local/domain/$g/device/vusb/0
xs() { XENSTORED_PATH=$A/socket "$@"; }
check "backend keys" "/local/domain/$g/device/vusb/0 $g 1 pv 2 8" \
    "$(for k in frontend frontend-id online type usb-ver num-ports; do xs xenstore-read "$be/$k"; done | paste -sd' ')"
check "backend ports empty" "8 ports, all empty" \
    "$(n=0; for p in 1 2 3 4 5 6 7 8; do [ -z "$(xs xenstore-read "$be/port/$p")" ] && n=$((n + 1)); done; echo "$n ports, all empty")"
check "frontend keys" "$be 0" \
    "$(for k in backend backend-id; do xs xenstore-read "$fe/$k"; done | paste -sd' ')"
check "libxl's copy" "$be pv 8" \
    "$(for k in backend type num-ports; do xs xenstore-read "/libxl/$g/device/vusb/0/$k"; done | paste -sd' ')"
check "backend dir: owner dom0, guest reads" "n0 r$g" \
    "$(xs xenstore-ls -p "$be" | sed -n 's/^num-ports = .*(\(.*\))$/\1/p' | tr ',' ' ')"
check "frontend dir: owner guest, backend reads" "n$g r0" \
    "$(xs xenstore-ls -p "$fe" | sed -n 's/^backend-id = .*(\(.*\))$/\1/p' | tr ',' ' ')"
status_is "backend InitWait" 0 test "$(xs xenstore-read "$be/state")" == 2
status_is "usbdev-attach nb-bulk" 0 "$xensim" usbdev-attach --dir "$A" g 1-1
check "nb-bulk on controller 0 port 1" "0 1" "$(cat "$dir/last.out")"
status_is "usbdev-attach nb-hid" 0 "$xensim" usbdev-attach --dir "$A" g 1-2 --controller 0
check "nb-hid on controller 0 port 2" "0 2" "$(cat "$dir/last.out")"
check "port/1 and port/2" "1-1 1-2" \
    "$(xs xenstore-read "$be/port/1") $(xs xenstore-read "$be/port/2")"
status_is "usbdev-attach: device attached already" 1 "$xensim" usbdev-attach --dir "$A" g 1-1
status_is "usbdev-attach: not a device" 2 "$xensim" usbdev-attach --dir "$A" g usb1
status_is "usbdev-attach: port taken" 1 "$xensim" usbdev-attach --dir "$A" g 1-3 --controller 0 --port 1
status_is "usbdev-attach: no such controller" 1 "$xensim" usbdev-attach --dir "$A" g 1-3 --controller 5
status_is "usbdev-detach: empty port" 1 "$xensim" usbdev-detach --dir "$A" g 0 3
status_is "usbctrl-attach: bad version" 2 "$xensim" usbctrl-attach --dir "$A" g --version 3
status_is "usbctrl-attach: too many ports" 2 "$xensim" usbctrl-attach --dir "$A" g --ports 32
status_is "usbctrl-attach: unknown guest" 1 "$xensim" usbctrl-attach --dir "$A" nobody
check "usb-list" "0 pv 0 2 8|Port 1: 1-1|Port 2: 1-2|Port 3:" \
    "$("$xensim" usb-list --dir "$A" g | awk 'NR==2 {print $1, $2, $3, $6, $7} NR>2 && NR<6 {$1=$1; print}' | paste -sd'|')"
# netbusctl usb-plug/usb-unplug: what an xl user runs instead of usbdev-attach.
nbctl() { XENSIM_DIR=$A "$netbusctl" "$@"; }
status_is "netbusctl usb-plug: port taken" 1 nbctl usb-plug g 0 1 1-2
status_is "netbusctl usb-plug: a name that is no device" 1 nbctl usb-plug g 0 3 zz
check "... and the port is left empty" "" "$(xs xenstore-read "$be/port/3")"
status_is "netbusctl usb-plug: no such controller" 1 nbctl usb-plug g 7 1 1-1
status_is "netbusctl usb-plug: a device not there yet waits" 0 nbctl usb-plug g 0 3 1-9
check "... and says so" "not claimed yet" "$(grep -o 'not claimed yet' "$dir/last.out")"
status_is "netbusctl usb-unplug" 0 nbctl usb-unplug g 0 3
check "port/3 emptied" "" "$(xs xenstore-read "$be/port/3")"
h=$("$xensim" create --dir "$A" --name h --memory 64)
status_is "another guest cannot read the controller's backend dir" 1 \
    "$xensim" run --dir "$A" --domid "$h" -- xenstore-read "$be/port/1"
status_is "the guest cannot write its ports" 1 \
    "$xensim" run --dir "$A" --domid "$g" -- xenstore-write "$be/port/3" 1-9
status_is "frontend: no such controller" 1 \
    "$xensim" run --dir "$A" --domid "$g" -- "$xenfront" usb list --devid 4 --timeout 2

# --- the frontend -------------------------------------------------------------
run_fe() { "$xensim" run --dir "$1" --domid "$2" -- "$xenfront" usb "${@:3}"; }
status_is "usb list" 0 run_fe "$A" "$g" list
out=$(cat "$dir/last.out")
check "port speeds" "port=1 speed=high|port=2 speed=full|port=3 speed=none" \
    "$(grep -E '^port=[123] speed=' <<<"$out" | paste -sd'|')"
check "nb-bulk descriptors" 'vid=1209 pid=4e42 bcdusb=0200 class=00 maxpacket0=64 configs=1 manufacturer="netbus" product="netbus bulk loopback" serial="NB-BULK-1"' \
    "$(grep '^port=1 addr=' <<<"$out" | sed 's/.*speed=high //')"
check "nb-bulk configuration" "if0-class=ff/00/00 hid=0 endpoints=0x01:bulk:512,0x81:bulk:512" \
    "$(grep '^port=1 config=1' <<<"$out" | sed 's/.*interfaces=1 //')"
check "nb-hid descriptors" 'vid=1209 pid=4e48 bcdusb=0200 class=00 maxpacket0=8 configs=1 manufacturer="netbus" product="netbus hid" serial="NB-HID-1"' \
    "$(grep '^port=2 addr=' <<<"$out" | sed 's/.*speed=full //')"
check "nb-hid configuration" "if0-class=03/00/00 hid=1 endpoints=0x81:interrupt:8:10ms" \
    "$(grep '^port=2 config=1' <<<"$out" | sed 's/.*interfaces=1 //')"
status_is "usb verify: wrong device on the port" 1 run_fe "$A" "$g" verify --port 2 --count 1
status_is "usb hid: wrong device on the port" 1 run_fe "$A" "$g" hid --port 1 --count 1
status_is "usb verify: missing --port" 2 run_fe "$A" "$g" verify
status_is "usb hid 100 reports" 0 run_fe "$A" "$g" hid --port 2 --count 100 --queue 2
check "hid reports in sequence" "result=ok reports=100" \
    "$(grep -o 'result=[a-zA-Z]* reports=[0-9]*' "$dir/last.out")"
hid_last=$(grep -o 'last=[0-9]*' "$dir/last.out" | cut -d= -f2)

# nb-hid moves to a second controller, so a second frontend can read it
# while the first streams.
status_is "usbdev-detach nb-hid from controller 0" 0 "$xensim" usbdev-detach --dir "$A" g 0 2
status_is "second controller" 0 "$xensim" usbctrl-attach --dir "$A" g --ports 2 --version 1
check "second controller is devid 1" 1 "$(cat "$dir/last.out")"
status_is "nb-hid on controller 1" 0 "$xensim" usbdev-attach --dir "$A" g 1-2 --controller 1
check "nb-hid on controller 1 port 1" "1 1" "$(cat "$dir/last.out")"

# --- verify and HID reads with a migration A -> B in the middle -----------------
run_fe "$A" "$g" verify --port 1 --seconds "$SECS" --queue 8 --timeout 30 \
    >"$dir/verify.out" 2>"$dir/verify.err" &
vpid=$!
# The HID reader does not wait for its interrupt INs at the suspend (they
# complete only when the device has a report; in a Linux guest usbhid's
# suspend kills them): they are unlinked at once, well within the 5 s
# drain time, and asked again after the move. The device is held (nothing
# to report) over the migration, so both INs are in flight at the suspend
# whatever the scheduling; released, the sequence carries on, none twice.
sleep $((SECS / 3 - 2))
run_fe "$A" "$g" hid --devid 1 --port 1 --count 600 --queue 2 \
    --timeout 30 >"$dir/hid.out" 2>"$dir/hid.err" &
hpid=$!
sleep 2
tell "hold nb-hid" >/dev/null
ng=$("$xensim" migrate --dir "$A" g --to "$B" --timeout 30 2>"$dir/migrate.err") || {
    fail=$((fail + 1)); echo "FAIL migrate A -> B"; sed 's/^/     /' "$dir/migrate.err"; }
tell "release nb-hid" >/dev/null
check "migrate recreated both controllers with their devices on B" \
    "1-1 1-2" "$(XENSTORED_PATH=$B/socket xenstore-read /local/domain/0/backend/vusb/$ng/0/port/1 \
        /local/domain/0/backend/vusb/$ng/1/port/1 | paste -sd' ')"
rc=0
wait "$vpid" || rc=$?
vout=$(cat "$dir/verify.out")
if [ "$rc" == 0 ] && grep -q 'result=ok' <<<"$vout" && grep -q 'mismatches=0 errors=0' <<<"$vout"; then
    pass=$((pass + 1)); echo "ok   verify across the migration: $(grep -o 'outs=[0-9]*\|ins=[0-9]*\|out_bytes=[0-9]*\|short_ins=[0-9]*\|MBps=[0-9.]*' <<<"$vout" | paste -sd' ')"
else
    fail=$((fail + 1)); echo "FAIL verify across the migration (exit $rc)"
    sed 's/^/     /' "$dir/verify.out" "$dir/verify.err" | tail -20
fi
check "migrated once, nothing unlinked at the drain, the device never seen replugged" \
    "suspends=1 migrations=1 drain_unlinked=0 port_connects=1" \
    "$(grep -o 'suspends=[0-9]* migrations=[0-9]* drain_unlinked=[0-9]* port_connects=[0-9]*' <<<"$vout")"
grep -h 'suspended' "$dir/verify.err" | sed 's/^/     /' || true
field() { grep -o " $1=[0-9]*" <<<"$vout" | cut -d= -f2; }
check "device counters from outside = what the guest saw complete" \
    "$(field outs) $(field out_bytes) $(field ins) $(field in_bytes)" "$(tell "stats nb-bulk")"
check "A's backend let both devices go" 2 "$(grep -c 'device removed' "$dir/netbusd-A.log")"
check "A's backend quiesced both controllers before the domain went" 2 \
    "$(grep -c 'quiesced: no URB in flight' "$dir/netbusd-A.log")"
check "A let both devices go at the quiesce, before B's backend wanted them" 2 \
    "$(grep -c "let go for the guest's next controller" "$dir/netbusd-A.log")"
check "so B claimed each on its first attempt" "2 0" \
    "$(grep -c 'claimed USB device' "$dir/netbusd-B.log") $(grep -c 'claimed on attempt' "$dir/netbusd-B.log")"
check "B's backend adopted the addresses the guest gave (one per controller)" 2 \
    "$(grep -c 'adopting address 1 ' "$dir/netbusd-B.log")"
check "the old domain is gone from A" "" \
    "$("$xensim" list --dir "$A" | awk '$2=="g"')"

rc=0
wait "$hpid" || rc=$?
hout=$(cat "$dir/hid.out")
check "hid across the migration (exit $rc)" \
    "result=ok reports=600 first=$((hid_last + 1)) last=$((hid_last + 600))" \
    "$(grep -o 'result=[a-zA-Z]* reports=[0-9]* first=[0-9]* last=[0-9]*' <<<"$hout")"
[ "$rc" == 0 ] || sed 's/^/     /' "$dir/hid.err" | tail -10
check "hid frontend migrated once" "suspends=1 migrations=1" \
    "$(grep -o 'suspends=[0-9]* migrations=[0-9]*' <<<"$hout")"
check "its two interrupt INs were unlinked at the suspend and asked again" \
    "drain_unlinked=2 asked_again=2" "$(grep -o 'drain_unlinked=[0-9]* asked_again=[0-9]*' <<<"$hout")"
check "it was not held for the drain time (5 s): paused under 2.5 s" yes \
    "$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^pause_ms_max=/) { split($i, kv, "="); ok = kv[2] < 2500 } }
            END { print (ok ? "yes" : "no") }' <<<"$hout")"

# --- after the move: the HID sequence carries on -----------------------------------
status_is "usb hid on B" 0 run_fe "$B" "$ng" hid --devid 1 --port 1 --count 20
check "hid reports continue the sequence" "first=$((hid_last + 601)) last=$((hid_last + 620))" \
    "$(grep -o 'first=[0-9]* last=[0-9]*' "$dir/last.out")"

# --- detach --------------------------------------------------------------------------
beB=/local/domain/0/backend/vusb/$ng/0
status_is "usbdev-detach nb-bulk" 0 "$xensim" usbdev-detach --dir "$B" "$ng" 0 1
check "port/1 emptied" "" "$(XENSTORED_PATH=$B/socket xenstore-read "$beB/port/1")"
status_is "usbctrl-detach 0" 0 "$xensim" usbctrl-detach --dir "$B" "$ng" 0
status_is "usbctrl-detach 1 (its device with it)" 0 "$xensim" usbctrl-detach --dir "$B" "$ng" 1
check "controller nodes removed" "gone gone gone" \
    "$(for p in "$beB" "/local/domain/$ng/device/vusb/0" "/libxl/$ng/device/vusb/0"; do
        XENSTORED_PATH=$B/socket xenstore-read "$p/state" >/dev/null 2>&1 && echo present || echo gone; done | paste -sd' ')"
check "usb-list empty" 1 "$("$xensim" usb-list --dir "$B" "$ng" | wc -l)"
check "B's backend let both devices go" 2 "$(grep -c 'device removed' "$dir/netbusd-B.log")"

# --- a saved and restored guest keeps what netbusctl put on its ports --------------
# libxl's config does not hold ports plugged with netbusctl, so it gives a
# restored guest's new controller empty ports; netbusd records them by UUID
# (xensim suspend + destroy + create with the same UUID: what xl save and
# xl restore do to the backend).
U=6e657462-7573-4000-8000-00000000beef
rec=/local/domain/0/netbus/usb-ports/${U}_0/2
xsB() { XENSTORED_PATH=$B/socket xenstore-read "$@" 2>/dev/null || echo gone; }
s1=$("$xensim" create --dir "$B" --name s --uuid $U --memory 64)
"$xensim" usbctrl-attach --dir "$B" s >/dev/null
status_is "netbusctl usb-plug nb-bulk on port 2 of a guest of B" 0 \
    env XENSIM_DIR="$B" "$netbusctl" usb-plug s 0 2 1-1
check "netbusd records the port under the guest's UUID" 1-1 "$(xsB $rec)"
status_is "the guest lists it" 0 run_fe "$B" "$s1" list
check "... at high speed" "port=2 speed=high" "$(grep -o '^port=2 speed=[a-z]*' "$dir/last.out")"
# a frontend connected, as xen-hcd in a running guest (suspend quiesces
# connected controllers only), with one URB at a time that the device
# answers at once: nothing is left for the quiesce to cancel, so the
# frontend carries on after the resume
run_fe "$B" "$s1" rtt --port 2 --count 100000000 >/dev/null 2>&1 &
spid=$!
for _ in $(seq 100); do
    [ "$(grep -c 'vusb/'"$s1"'/0: connected' "$dir/netbusd-B.log")" = 2 ] && break; sleep 0.1
done
# let_go_count N: waits for the Nth "let go" of nb-bulk by s1's controller
let_go_count() {
    for _ in $(seq 50); do
        [ "$(grep -c "vusb/$s1/0: port 2: 1-1 let go" "$dir/netbusd-B.log")" = "$1" ] && break
        sleep 0.1
    done
    grep -c "vusb/$s1/0: port 2: 1-1 let go" "$dir/netbusd-B.log"
}
"$xensim" suspend --dir "$B" s
check "the suspended guest's device is let go" 1 "$(let_go_count 1)"
# resumed here (a cancelled save or failed migration): claimed back, and
# the guest is never told the device left
"$xensim" resume --dir "$B" s
for _ in $(seq 50); do
    [ "$(grep -c "vusb/$s1/0/port/2: claimed USB device" "$dir/netbusd-B.log")" = 2 ] && break; sleep 0.1
done
check "a guest resumed here gets its device back unseen" "2 0" \
    "$(grep -c "vusb/$s1/0/port/2: claimed USB device" "$dir/netbusd-B.log") $(grep -c "vusb/$s1/0: port 2: device gone" "$dir/netbusd-B.log")"
"$xensim" suspend --dir "$B" s
check "suspended again: let go again" 2 "$(let_go_count 2)"
"$xensim" destroy --dir "$B" s
wait "$spid" 2>/dev/null || true
check "the guest destroyed after its suspend keeps its record" 1-1 "$(xsB $rec)"
s2=$("$xensim" create --dir "$B" --name s --uuid $U --memory 64)
"$xensim" usbctrl-attach --dir "$B" s >/dev/null
check "the restored guest's new controller gets nb-bulk on port 2" 1-1 \
    "$(xsB /local/domain/0/backend/vusb/$s2/0/port/2)"
status_is "verify on the restored guest" 0 run_fe "$B" "$s2" verify --port 2 --seconds 2
"$xensim" destroy --dir "$B" s
check "a guest destroyed while running leaves no record" gone "$(xsB $rec)"

# The netbusds are usbdev's grandchildren: each must stop on SIGTERM, and
# usbdev reports their exit statuses (or'ed).
kill -TERM "$nb_a" "$nb_b"
urc=0
timeout 20 tail --pid="$usbdev_pid" -f /dev/null || urc=timeout
wait "$usbdev_pid" 2>/dev/null || urc=$?
check "both netbusds exit 0 on SIGTERM" 0 "$urc"
no_sanitizer_reports "in netbusd or the frontends" "$dir"/netbusd-*.log "$dir"/*.err "$dir/last.out"
echo "usb-local: $pass passed, $fail failed"
[ "$fail" == 0 ]
