#!/usr/bin/env bash
# sim tier: PV USB across the netbus channel, with migrations and faults.
# Simulated hosts a, b and c (`xensim cluster`: own network namespaces
# joined by veth, own xenstore, own netbusd). a's netbusd runs under usbdev
# (nb-bulk on 1-1, nb-hid on 1-2) and exports both (`netbusctl export bulk
# usb:1-1`, `hid usb:1-2`). A guest on b gets a PV USB controller whose
# ports are netbus://A/bulk and netbus://A/hid; the reference usbfront
# (xenfront usb) enumerates both through the channel and reads HID reports
# in sequence. nb-hid then moves to a second controller, and a verified
# bulk loopback stream runs (at most USB_VERIFY_SECONDS, default 300;
# stopped when they are over) while:
#   - b's link is down for 1.5 s (b's netbusd, with a 300 ms keepalive,
#     loses the connection and resumes its session);
#   - b's connection to a is killed (ss -K in b's namespace);
#   - the guest migrates b -> c, a HID reader starts on c, and the guest
#     migrates back c -> b with it reading (its interrupt INs unlinked at
#     the suspend).
# The stream must end ok with every byte checked, the port never seen
# replugged, and the device's own counters (usbdev's control socket) equal
# to what the guest saw complete: every transfer ran once, none twice. The
# HID numbers must continue with none lost or twice. Then:
#   - a second guest (on c) asking for the bulk export is refused (its
#     backend's netbus-port-error/1 says so; a logs it); a peer holding a
#     wrong key gets a challenge and a refusal, nothing else (recorded by a
#     relay), and its guest's port stays empty;
#   - nb-bulk unplugged at a (idle): the export's speed is none and the
#     guest's port shows no device; plugged back: the port shows it at
#     high speed, it enumerates afresh and a short stream runs; nb-hid
#     unplugged while the guest reads it: the report in flight ends "no
#     device" through the channel, the port empties; plugged back, the
#     fresh device's reports start at 1;
#   - unexport of the bulk export while the guest uses it is refused;
#     --force ends the session (the guest's port empties, its backend says
#     why) and releases the device (a new export of 1-1 claims it);
#   - every netbusd exits 0 on SIGTERM; no sanitizer report.
# Needs root for the namespaces. KEEP=1 keeps the scratch directory.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
base=${build%/san}
here=$(cd "$(dirname "$0")" && pwd)
peer=$here/lib/netpeer.pl
SECS=${USB_VERIFY_SECONDS:-300}
for b in "$build/xensim" "$build/netbusd" "$build/netbusctl" "$build/xenfront" "$base/usbdev"; do
    [ -x "$b" ] || { echo "usb-remote: $b is not built"; exit 1; }
done
xensim=$(realpath "$build/xensim") netbusd=$(realpath "$build/netbusd")
netbusctl=$(realpath "$build/netbusctl") xenfront=$(realpath "$build/xenfront")
usbdev=$(realpath "$base/usbdev")
. "$(dirname "$0")/lib/cluster.sh"
cluster_start usb-remote nbusb

port=7797
key() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
printf '# cluster key\n* %s\n' "$(key)" >"$dir/keys"
printf '# a key a does not know\n* %s\n' "$(key)" >"$dir/keys.bad"
chmod 600 "$dir/keys" "$dir/keys.bad"
declare -A nb addr
# netbusd on HOST with key file KEYS. a's runs under usbdev with both test
# devices (usbdev passes SIGTERM on and exits with netbusd's status); b's
# and c's only import, with a short keepalive so that a link fault is
# noticed.
start_netbusd() { # host keys
    local h=$1 k=$2
    local args=(--xensim-dir "$dir/$h" --name "$h" --keys "$k" --log-level info)
    if [ "$h" == a ]; then
        "$xensim" cluster exec --dir "$dir" a -- "$usbdev" --bulk --hid \
            --control "$dir/usbdev.ctl" -- "$netbusd" "${args[@]}" \
            --listen "${addr[a]}:$port" >>"$dir/a/netbusd.log" 2>&1 &
    else
        "$xensim" cluster exec --dir "$dir" "$h" -- "$netbusd" "${args[@]}" --listen off \
            --keepalive-ms 300 --reconnect-max-ms 400 >>"$dir/$h/netbusd.log" 2>&1 &
    fi
    nb[$h]=$!
    pids+=($!)
}
tell() { "$usbdev" --control "$dir/usbdev.ctl" --tell "$1"; }

cl up --hosts a,b,c --timeout 60 >"$dir/up.out"
for h in a b c; do addr[$h]=$(cl addr "$h"); done
start_netbusd a "$dir/keys"
start_netbusd b "$dir/keys"
start_netbusd c "$dir/keys"
wait_listening usb-remote a "${addr[a]}" "$port" || exit 1
wait_for 10 tell "stats nb-bulk" || { echo "usb-remote: usbdev does not answer"; exit 1; }

# --- a exports both devices ----------------------------------------------------------
status_is "a: export bulk usb:1-1" 0 on a "$netbusctl" export bulk usb:1-1
status_is "a: export hid usb:1-2" 0 on a "$netbusctl" export hid usb:1-2
on a "$netbusctl" list --json >"$dir/list.json"
exports() { # json: name kind speed vendor-product, one export a line
    perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>);
        print join(" ", $_->{name}, $_->{kind}, $_->{speed}, $_->{vendor_product}), "\n"
            for sort { $a->{name} cmp $b->{name} } @{$j->{exports}}' <"$1"
}
check "a lists both exports with their devices" "bulk usb high 1209:4e42|hid usb full 1209:4e48" \
    "$(exports "$dir/list.json" | paste -sd'|')"
url_bulk="netbus://${addr[a]}:$port/bulk" url_hid="netbus://${addr[a]}:$port/hid"

# --- a guest on b: one controller, both exports ----------------------------------------
on b "$xensim" create --name g --memory 128 >/dev/null
status_is "b: usbctrl-attach" 0 on b "$xensim" usbctrl-attach g
status_is "b: usbdev-attach $url_bulk" 0 on b "$xensim" usbdev-attach g "$url_bulk"
check "bulk on controller 0 port 1" "0 1" "$(cat "$dir/last.out")"
status_is "b: usbdev-attach $url_hid" 0 on b "$xensim" usbdev-attach g "$url_hid" --controller 0
check "hid on controller 0 port 2" "0 2" "$(cat "$dir/last.out")"
domid_of() { on "$1" "$xensim" list | awk -v n="$2" '$2==n {print $1}'; }
uuid_of() { on "$1" "$xensim" list | awk -v n="$2" '$2==n {print $6}'; }
g_uuid=$(uuid_of b g)
fe() { # host guest command args...: xenfront usb as a guest process there
    on "$1" "$xensim" run --domid "$2" -- "$xenfront" usb "${@:3}"
}
status_is "usb list through the channel" 0 fe b g list
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
check "a opened both sessions for the guest, from b" "2" \
    "$(grep -c "opened by b ($g_uuid)" "$dir/a/netbusd.log" || true)"
status_is "usb hid 50 reports" 0 fe b g hid --port 2 --count 50 --queue 2
check "hid reports in sequence" "result=ok reports=50" \
    "$(grep -o 'result=[a-zA-Z]* reports=[0-9]*' "$dir/last.out")"
hid_last=$(grep -o 'last=[0-9]*' "$dir/last.out" | cut -d= -f2)

# nb-hid moves to a second controller so that a second frontend can read
# it while the first streams: its session closes, a new one opens.
status_is "b: usbdev-detach hid" 0 on b "$xensim" usbdev-detach g 0 2
status_is "b: second controller" 0 on b "$xensim" usbctrl-attach g --ports 2 --version 1
status_is "b: hid on controller 1" 0 on b "$xensim" usbdev-attach g "$url_hid" --controller 1
check "hid on controller 1 port 1" "1 1" "$(cat "$dir/last.out")"

# --- the stream, with faults and two migrations -------------------------------------------
host_g=b
conn_losses() { grep -c 'connection to the export lost' "$dir/$1/netbusd.log" || true; }
fe b g verify --port 1 --seconds "$SECS" --stop-file "$dir/verify.stop" --queue 8 \
    --timeout 30 >"$dir/verify.out" 2>"$dir/verify.err" &
vpid=$!
pids+=($vpid)
t_verify=$(date +%s%N)
since() { echo $((($(date +%s%N) - t_verify) / 1000000)); } # ms
sleep 2

echo "--   fault: b's link down for 1.5 s ($(since) ms)"
lost0=$(conn_losses b)
status_is "b's link down" 0 cl link b down
sleep 1.5
status_is "b's link up" 0 cl link b up
check "b lost its connection to a while the link was down" "yes" \
    "$(yes_no [ "$(conn_losses b)" -gt "$lost0" ])"
sleep 2

echo "--   fault: b's connection to a killed ($(since) ms)"
lost1=$(conn_losses b)
status_is "ss -K in b's namespace" 0 on b ss -K dst "${addr[a]}" dport = ":$port"
check "ss killed a connection" "yes" "$(yes_no grep -q "${addr[a]}:$port" "$dir/last.out")"
wait_for 5 eval '[ "$(conn_losses b)" -gt "$lost1" ]' || true
check "b noticed the killed connection" "yes" "$(yes_no [ "$(conn_losses b)" -gt "$lost1" ])"
sleep 1.5

# migrate_g TO: the guest moves; its controllers must be recreated there
# with the same ports.
migrate_g() {
    local to=$1 t rc=0
    t=$("$xensim" migrate --dir "$dir/$host_g" g --to "$dir/$to" --timeout 30 2>&1 >/dev/null) || rc=$?
    if [ "$rc" == 0 ]; then
        pass=$((pass + 1)); echo "ok   migrate g $host_g -> $to ($(since) ms): ${t#xensim migrate: }"
        host_g=$to
    else
        fail=$((fail + 1)); echo "FAIL migrate g $host_g -> $to (exit $rc): $t"
        return
    fi
    local d
    d=$(domid_of "$to" g)
    check "$to has both controllers with the exports on their ports" "$url_bulk $url_hid" \
        "$(on "$to" xenstore-read "/local/domain/0/backend/vusb/$d/0/port/1" \
            "/local/domain/0/backend/vusb/$d/1/port/1" | paste -sd' ')"
}
migrate_g c
# A HID reader starts on c and reads across the move back to b; its
# interrupt INs are unlinked at the suspend (--drain-ms 0) and asked again
# on b. The device is held (nothing to report) over the move, so both are
# in flight at the suspend whatever the scheduling; released, the sequence
# carries on, none twice.
fe c g hid --devid 1 --port 1 --count 500 --queue 2 --drain-ms 0 --timeout 30 \
    >"$dir/hid.out" 2>"$dir/hid.err" &
hpid=$!
pids+=($hpid)
sleep 2
tell "hold nb-hid" >/dev/null
migrate_g b
tell "release nb-hid" >/dev/null
echo "--   faults and migrations took $(since) ms of the stream (at most $SECS s)"
check "the stream was still running after the last migration" "yes" "$(yes_no kill -0 "$vpid")"
sleep 2 # the stream carries on for a while on b after the moves
touch "$dir/verify.stop"
t_stop=$(date +%s)

rc=0
wait "$vpid" || rc=$?
check "the stream ended at its stop file (under 30 s)" "yes" "$(yes_no [ $(($(date +%s) - t_stop)) -lt 30 ])"
vout=$(cat "$dir/verify.out")
if [ "$rc" == 0 ] && grep -q 'result=ok' <<<"$vout" && grep -q 'mismatches=0 errors=0' <<<"$vout"; then
    pass=$((pass + 1)); echo "ok   verify through the faults and migrations: $(grep -o 'outs=[0-9]*\|ins=[0-9]*\|out_bytes=[0-9]*\|short_ins=[0-9]*\|MBps=[0-9.]*' <<<"$vout" | paste -sd' ')"
else
    fail=$((fail + 1)); echo "FAIL verify through the faults and migrations (exit $rc)"
    sed 's/^/     /' "$dir/verify.out" "$dir/verify.err" | tail -20
fi
check "migrated twice, nothing unlinked at the drains, the device never seen replugged" \
    "suspends=2 migrations=2 drain_unlinked=0 port_connects=1" \
    "$(grep -o 'suspends=[0-9]* migrations=[0-9]* drain_unlinked=[0-9]* port_connects=[0-9]*' <<<"$vout")"
field() { grep -o " $1=[0-9]*" <<<"$vout" | cut -d= -f2; }
check "device counters from a's usbdev = what the guest saw complete" \
    "$(field outs) $(field out_bytes) $(field ins) $(field in_bytes)" "$(tell "stats nb-bulk")"

rc=0
wait "$hpid" || rc=$?
hout=$(cat "$dir/hid.out")
check "hid across the migration (exit $rc)" \
    "result=ok reports=500 first=$((hid_last + 1)) last=$((hid_last + 500))" \
    "$(grep -o 'result=[a-zA-Z]* reports=[0-9]* first=[0-9]* last=[0-9]*' <<<"$hout")"
[ "$rc" == 0 ] || sed 's/^/     /' "$dir/hid.err" | tail -10
check "hid frontend migrated once" "suspends=1 migrations=1" \
    "$(grep -o 'suspends=[0-9]* migrations=[0-9]*' <<<"$hout")"
check "its two interrupt INs were unlinked at the suspend and asked again" \
    "drain_unlinked=2 asked_again=2" "$(grep -o 'drain_unlinked=[0-9]* asked_again=[0-9]*' <<<"$hout")"
status_is "usb hid on b after the moves" 0 fe b g hid --devid 1 --port 1 --count 20
check "hid reports continue the sequence" "first=$((hid_last + 501)) last=$((hid_last + 520))" \
    "$(grep -o 'first=[0-9]* last=[0-9]*' "$dir/last.out")"
# One session per host the guest was on: b's resumed its session after
# both connection losses. The link fault stalls the stream, so URBs were
# waiting to be resent then (at the ss -K there may be none in flight
# when the guest is the slower side).
check "b's stream had URBs waiting at a connection loss" "yes" \
    "$(yes_no grep -q 'vusb/[0-9]*/0/port/1: connection to the export lost .*: [1-9][0-9]* transfer(s) wait' "$dir/b/netbusd.log")"
check "a's bulk sessions for the guest: b (resumed after the faults), c, b" "b c b" \
    "$(sed -n "s|.*exports/bulk: session [0-9]* opened by \([a-z]*\) ($g_uuid)|\1|p" "$dir/a/netbusd.log" | paste -sd' ')"
# b's second controller had no frontend yet when the guest first left b.
check "b quiesced the streaming controller when the guest left" "1" \
    "$(grep -c 'quiesced: no URB in flight' "$dir/b/netbusd.log" || true)"
check "c quiesced both controllers when the guest left" "2" \
    "$(grep -c 'quiesced: no URB in flight' "$dir/c/netbusd.log" || true)"

# --- refusals ------------------------------------------------------------------------------
# A second guest, on c, asks for the bulk export while g holds it.
on c "$xensim" create --name other --memory 64 >/dev/null
status_is "c: usbctrl-attach other" 0 on c "$xensim" usbctrl-attach other
status_is "c: usbdev-attach $url_bulk (written)" 0 on c "$xensim" usbdev-attach other "$url_bulk"
be_other=/local/domain/0/backend/vusb/$(domid_of c other)/0
port_error() { on "$1" xenstore-read "$2/netbus-port-error/$3" 2>/dev/null; }
wait_for 15 eval '[ -n "$(port_error c "$be_other" 1)" ]' || true
check "c's backend says the export is in use" "export 'bulk' is in use by another guest" \
    "$(port_error c "$be_other" 1 | grep -o "export 'bulk' is in use by another guest")"
check "a refused it: g holds the export" "yes" \
    "$(yes_no grep -q "refused a session for guest $(uuid_of c other): guest $g_uuid holds" "$dir/a/netbusd.log")"
status_is "the other guest's port shows no device" 0 fe c other list --settle-ms 300
check "its port 1 is empty" "port=1 speed=none" "$(grep '^port=1 ' "$dir/last.out")"
on c "$xensim" destroy other >/dev/null 2>&1 || true

# c's netbusd again, with a key a does not know, asking through a relay that
# records what a sends.
netbusd_stops "netbusd on c" "${nb[c]}" 30
start_netbusd c "$dir/keys.bad"
"$xensim" cluster exec --dir "$dir" c -- perl "$peer" proxy "${addr[c]}" 7798 "${addr[a]}" "$port" 20 \
    "$dir/wrongkey.log" >"$dir/proxy.out" 2>&1 &
ppid=$!
pids+=($ppid)
wait_for 10 grep -q listening "$dir/proxy.out" || true
on c "$xensim" create --name intruder --memory 64 >/dev/null
status_is "c: usbctrl-attach intruder" 0 on c "$xensim" usbctrl-attach intruder
status_is "c: usbdev-attach through the relay (written)" 0 \
    on c "$xensim" usbdev-attach intruder "netbus://${addr[c]}:7798/bulk"
status_is "the intruder's port list" 0 fe c intruder list --settle-ms 2000
check "the intruder's port 1 is empty" "port=1 speed=none" "$(grep '^port=1 ' "$dir/last.out")"
wait "$ppid" 2>/dev/null || true
from_a=$(sed -n 's/^<- //p' "$dir/wrongkey.log" | tr -d '\n')
# The frames a sent, by type: 24-byte headers (magic "NBUS", version, type,
# flags, session, length LE, tag), then length bytes (PROTOCOL.md).
frame_types() { # hex
    local hex=$1 types="" len
    while [ ${#hex} -ge 48 ]; do
        [ "${hex:0:8}" == 4e425553 ] || { types+=" not-a-frame"; break; }
        len=$((16#${hex:30:2}${hex:28:2}${hex:26:2}${hex:24:2}))
        types+=" ${hex:10:2}"
        hex=${hex:$((48 + 2 * len))}
    done
    [ -z "$hex" ] || types+=" trailing-bytes"
    echo "${types# }"
}
check "wrong key: a sent a challenge and a refusal, nothing else" "02 05" "$(frame_types "$from_a")"
check "wrong key: the refusal says auth (code 1)" "01000000" "${from_a: -8}"
check "wrong key: no vendor:product in what a sent" "no" "$(yes_no grep -qi '0912424e' <<<"$from_a")"
on c "$xensim" destroy intruder >/dev/null 2>&1 || true

# --- unplug and replug at a ---------------------------------------------------------------
# nb-bulk with no transfer going: the guest's port empties and comes back
# with the device, which enumerates afresh and streams (no verify runs
# through the unplug: it cannot go on without its device).
export_speed() { # export
    on a "$netbusctl" list --json >"$dir/l.json" && exports "$dir/l.json" | awk -v e="$1" '$1==e {print $3}'
}
port_line() { # controller: port 1's line of `usb list` on it
    fe "$host_g" g list --devid "$1" --settle-ms 500 2>/dev/null | grep '^port=1 speed='
}
status_is "usbdev: unplug nb-bulk" 0 tell "unplug nb-bulk"
wait_for 10 eval '[ "$(export_speed bulk)" == none ]' || true
check "a's bulk export shows the device unplugged" "none" "$(export_speed bulk)"
check "the guest's bulk port shows no device" "port=1 speed=none" "$(port_line 0)"
check "the guest's backend was told" "yes" \
    "$(yes_no grep -q "vusb/[0-9]*/0/port/1: the export's device: unplugged" "$dir/b/netbusd.log")"
status_is "usbdev: plug nb-bulk" 0 tell "plug nb-bulk"
wait_for 10 eval '[ "$(export_speed bulk)" == high ]' || true
check "a claimed it again" "high" "$(export_speed bulk)"
status_is "usb list after the replug" 0 fe b g list
check "the guest's port shows it again, enumerated afresh" \
    'port=1 speed=high|vid=1209 pid=4e42 serial="NB-BULK-1"' \
    "$(grep '^port=1 speed=' "$dir/last.out")|$(grep '^port=1 addr=' "$dir/last.out" | grep -o 'vid=[0-9a-f]* pid=[0-9a-f]*\|serial="[^"]*"' | paste -sd' ')"
status_is "a short stream on the replugged device" 0 fe b g verify --port 1 --count 200
check "the stream was ok" "yes" "$(yes_no grep -q 'result=ok.*mismatches=0 errors=0' "$dir/last.out")"
check "the replugged device's counters = that stream" \
    "$(grep -o ' outs=[0-9]*\| out_bytes=[0-9]*\| ins=[0-9]*\| in_bytes=[0-9]*' "$dir/last.out" | cut -d= -f2 | paste -sd' ')" \
    "$(tell "stats nb-bulk")"

# nb-hid while the guest reads it: the interrupt INs at the device end
# NODEV through the channel (the reader stops at once), the port empties;
# plugged back, it is a fresh device whose reports start at 1.
fe b g hid --devid 1 --port 1 --count 3000 --queue 2 --timeout 10 \
    >"$dir/hid-unplug.out" 2>"$dir/hid-unplug.err" &
hupid=$!
pids+=($hupid)
sleep 1.5
status_is "usbdev: unplug nb-hid while the guest reads it" 0 tell "unplug nb-hid"
hrc=0
timeout 10 tail --pid="$hupid" -f /dev/null || hrc=timeout
wait "$hupid" 2>/dev/null || hrc=$?
check "the reader stopped at once" 1 "$hrc"
check "its report in flight ended: no device" "yes" \
    "$(yes_no grep -q 'no device' "$dir/hid-unplug.err")"
[ "$hrc" == 1 ] || sed 's/^/     /' "$dir/hid-unplug.out" "$dir/hid-unplug.err" | tail -10
wait_for 10 eval '[ "$(export_speed hid)" == none ]' || true
check "a's hid export shows the device unplugged" "none" "$(export_speed hid)"
check "the guest's hid port shows no device" "port=1 speed=none" "$(port_line 1)"
status_is "usbdev: plug nb-hid" 0 tell "plug nb-hid"
wait_for 10 eval '[ "$(export_speed hid)" == full ]' || true
check "the guest's hid port shows it again" "port=1 speed=full" "$(port_line 1)"
status_is "usb hid on the replugged device" 0 fe b g hid --devid 1 --port 1 --count 20
check "a fresh device: reports from 1" "result=ok reports=20 first=1 last=20" \
    "$(grep -o 'result=[a-zA-Z]* reports=[0-9]* first=[0-9]* last=[0-9]*' "$dir/last.out")"

# --- unexport ------------------------------------------------------------------------------
be_g=/local/domain/0/backend/vusb/$(domid_of b g)/0
status_is "a: unexport bulk while the guest uses it is refused" 1 on a "$netbusctl" unexport bulk
check "it lists the guest's session from b" "yes" \
    "$(yes_no grep -q "session [0-9]*: b ($g_uuid)" "$dir/last.out")"
status_is "a: unexport bulk --force" 0 on a "$netbusctl" unexport bulk --force
wait_for 10 eval '[ -n "$(port_error b "$be_g" 1)" ]' || true
check "the guest's backend says the export went" "yes" \
    "$(yes_no grep -q unexported <<<"$(port_error b "$be_g" 1)")"
check "the guest's port shows no device" "port=1 speed=none" "$(port_line 0)"
check "a lists only hid" "hid" \
    "$(on a "$netbusctl" list --json >"$dir/l.json" && exports "$dir/l.json" | cut -d' ' -f1 | paste -sd' ')"
status_is "the device was released: a new export claims it" 0 on a "$netbusctl" export bulk2 usb:1-1
check "bulk2 serves nb-bulk" "bulk2 usb high 1209:4e42" \
    "$(on a "$netbusctl" list --json >"$dir/l.json" && exports "$dir/l.json" | grep '^bulk2 ')"

# --- netbusd stops cleanly everywhere (a sanitized build reports leaks now) ----------------
on "$host_g" "$xensim" destroy g >/dev/null 2>&1 || true
for h in a b c; do
    netbusd_stops "netbusd on $h" "${nb[$h]}" 30
done
for h in a b c; do
    no_sanitizer_reports "on $h" "$dir/$h/netbusd.log" "$dir/$h/host.log"
done
no_sanitizer_reports "in the guests" "$dir"/*.err "$dir/last.out"
if [ "$fail" -ne 0 ]; then
    for h in a b c; do echo "--- netbusd on $h (last 25 lines)"; tail -25 "$dir/$h/netbusd.log"; done
fi
echo "usb-remote: $(($(date +%s) - t_start)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
