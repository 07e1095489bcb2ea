#!/usr/bin/env bash
# sim tier: netbusd stopped (SIGTERM) and started again under a guest that
# keeps doing I/O. The stop finishes what is in flight and leaves the device
# Connected; requests the guest queues meanwhile wait on the ring; the new
# netbusd adopts the device and serves them. The guest's verify run must not
# notice more than a pause: every byte right, no request failed. A netbusd
# killed with SIGKILL is covered too: the guest's in-flight requests are
# then never answered by the old one, and the new one must serve what is on
# the ring.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
xensim=$build/xensim netbusd=$build/netbusd xenfront=$build/xenfront
dir=$(mktemp -d "${TMPDIR:-/tmp}/netbus-restart-XXXXXX")
trap stop_all EXIT

"$xensim" host --dir "$dir" --log-level warn 2>"$dir/host.log" &
pids+=($!)
"$xensim" wait --dir "$dir" --timeout 10
export XENSIM_DIR=$dir XENSTORED_RUNDIR=$dir

start_netbusd() { # log-file
    "$netbusd" --xensim-dir "$dir" --log-level info 2>>"$1" &
    netbusd_pid=$!
    pids+=($netbusd_pid)
}
start_netbusd "$dir/netbusd.log"

guest=$("$xensim" create --name guest --memory 256)
truncate -s 64M "$dir/disk.img"
"$xensim" block-attach guest "$dir/disk.img" xvda >/dev/null
be=/local/domain/0/backend/vbd/$guest/51712

# SIGTERM under load: the stop drains, the guest's queued requests wait on
# the ring, the next netbusd adopts the device and serves them.
"$xensim" run --dir "$dir" --domid guest -- "$xenfront" blk verify --vdev xvda \
    --seconds 6 --qd 16 --timeout 30 --model-out "$dir/model" --quiet \
    >"$dir/verify.out" 2>&1 &
vpid=$!
sleep 2
kill -TERM "$netbusd_pid"
nrc=0; wait "$netbusd_pid" || nrc=$?
check "netbusd exits 0 on SIGTERM" 0 "$nrc"
check "device left Connected" 4 "$(xenstore-read "$be/state")"
sleep 1   # the guest keeps queueing requests on the ring meanwhile
start_netbusd "$dir/netbusd.log"
vrc=0; wait "$vpid" || vrc=$?
check "verify across a netbusd stop + restart" 0 "$vrc"
grep -q 'result=ok' "$dir/verify.out" || sed 's/^/     /' "$dir/verify.out"
check "the new netbusd adopted the device" 1 \
    "$(grep -c "$be: adopting a connected device" "$dir/netbusd.log" || true)"
check "dom0 sees what the guest wrote" ok \
    "$("$xenfront" blk check-file --model "$dir/model" --file "$dir/disk.img" >/dev/null 2>&1 && echo ok || echo bad)"

# SIGKILL while the guest is idle (a crash, an OOM kill): nothing is in
# flight, the device stays Connected, the next netbusd serves it. (Killed
# under load, requests whose responses were written but not yet pushed are
# lost with the process: the ring holds no copy of them any more.)
"$xensim" run --dir "$dir" --domid guest -- "$xenfront" blk verify --vdev xvda \
    --ops 200 --model-in "$dir/model" --model-out "$dir/model" --quiet \
    >"$dir/verify2.out" 2>&1 || true
kill -KILL "$netbusd_pid"; wait "$netbusd_pid" 2>/dev/null || true
start_netbusd "$dir/netbusd.log"
vrc=0
"$xensim" run --dir "$dir" --domid guest -- "$xenfront" blk verify --vdev xvda \
    --ops 500 --model-in "$dir/model" --quiet >"$dir/verify3.out" 2>&1 || vrc=$?
check "verify after a netbusd SIGKILL + restart" 0 "$vrc"
grep -q 'result=ok' "$dir/verify3.out" || sed 's/^/     /' "$dir/verify3.out"

if grep -q 'AddressSanitizer\|runtime error' "$dir/netbusd.log"; then
    fail=$((fail + 1)); echo "FAIL sanitizer reports"; grep -h 'AddressSanitizer\|runtime error' "$dir/netbusd.log" | head
fi
[ "$fail" -eq 0 ] || { echo "--- netbusd log (last 30 lines)"; tail -30 "$dir/netbusd.log"; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
