#!/usr/bin/env bash
# sim tier: netbusd against a xensim host, driven the way libxl and a guest
# would drive it with xenstore writes: a vbd device appears (InitWait,
# hotplug-status=connected), a broken one fails alone (hotplug-status=error,
# error node), a frontend that closes takes its backend to Closed, online=0
# removes a device, a destroyed guest's devices go away, and SIGTERM closes
# what is left and exits 0, removing the pid file. First, bad settings
# (poll-max-us) are refused with exit 2 and a message naming them.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
xensim=$build/xensim
netbusd=$build/netbusd
dir=$(mktemp -d "${TMPDIR:-/tmp}/netbus-sim-XXXXXX")
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT

# Bounded poll: waits up to 10 s for PATH to read VALUE, then prints it.
wait_read() { # path value
    local v=""
    for _ in $(seq 200); do
        v=$(xenstore-read "$1" 2>/dev/null || true)
        [ "$v" == "$2" ] && break
        sleep 0.05
    done
    echo "$v"
}

# Bad settings: exit 2 and a message that names the setting and its range.
for bad in "--poll-max-us 5000" "--poll-max-us abc" "--poll-max-us -1"; do
    rc=0; out=$("$netbusd" $bad --check-config 2>&1) || rc=$?
    check "netbusd $bad: exit 2, says why" "2 yes" \
        "$rc $(grep -q "poll-max-us: .* from 0 to 1000" <<<"$out" && echo yes || echo "no: $out")"
done
printf 'poll-max-us = 12x\n' >"$dir/bad.conf"
rc=0; out=$("$netbusd" -c "$dir/bad.conf" --check-config 2>&1) || rc=$?
check "a bad poll-max-us in the file: exit 2, file and line named" "2 yes" \
    "$rc $(grep -q "bad.conf:1: poll-max-us" <<<"$out" && echo yes || echo "no: $out")"
printf 'poll-max-us = 12\n' >"$dir/poll.conf"
check "poll-max-us from the file, the command line winning" "12 0" \
    "$("$netbusd" -c "$dir/poll.conf" --check-config | sed -n 's/^poll-max-us = //p') $("$netbusd" -c "$dir/poll.conf" --poll-max-us 0 --check-config | sed -n 's/^poll-max-us = //p')"

"$xensim" host --dir "$dir" --log-level warn 2>"$dir/host.log" &
pids+=($!)
"$xensim" wait --dir "$dir" --timeout 10
export XENSTORED_RUNDIR=$dir

g=$("$xensim" create --dir "$dir" --name guest --memory 32)
truncate -s 4M "$dir/disk.img"

cat > "$dir/netbusd.conf" <<CONF
# netbusd for this test
xenif = xensim
xensim-dir = $dir
types = vbd
log-level = debug
pidfile = $dir/netbusd.pid
CONF
"$netbusd" --config "$dir/netbusd.conf" 2>"$dir/netbusd.log" &
nbd=$!
pids+=($nbd)
for _ in $(seq 100); do [ -s "$dir/netbusd.pid" ] && break; sleep 0.05; done
check "pid file" "$nbd" "$(cat "$dir/netbusd.pid" 2>/dev/null)"

# What libxl writes for a disk, in one transaction.
add_disk() { # devid params
    local be=/local/domain/0/backend/vbd/$g/$1 fe=/local/domain/$g/device/vbd/$1
    xenstore-write "$fe/backend" "$be" "$fe/backend-id" 0 "$fe/state" 1 \
        "$be/frontend" "$fe" "$be/frontend-id" "$g" "$be/params" "$2" \
        "$be/mode" w "$be/type" phy "$be/dev" xvda "$be/device-type" disk \
        "$be/online" 1 "$be/state" 1
}
be1=/local/domain/0/backend/vbd/$g/51712
be2=/local/domain/0/backend/vbd/$g/51728
be3=/local/domain/0/backend/vbd/$g/51744
add_disk 51712 "$dir/disk.img"
add_disk 51728 "$dir/missing.img"
check "device InitWait" "2" "$(wait_read "$be1/state" 2)"
check "hotplug-status connected" "connected" "$(xenstore-read "$be1/hotplug-status" 2>/dev/null || true)"
check "broken device: hotplug-status" "error" "$(wait_read "$be2/hotplug-status" error)"
check "broken device: error node" "yes" \
    "$(xenstore-read /local/domain/0/error/backend/vbd/$g/51728/error >/dev/null 2>&1 && echo yes || echo no)"
check "broken device: Closing" "5" "$(xenstore-read "$be2/state")"
check "good device unaffected" "2" "$(xenstore-read "$be1/state")"

# The guest's frontend gives up on the broken one.
"$xensim" run --dir "$dir" --domid "$g" -- xenstore-write device/vbd/51728/state 6 2>/dev/null || \
    xenstore-write /local/domain/$g/device/vbd/51728/state 6
check "frontend Closed -> backend Closed" "6" "$(wait_read "$be2/state" 6)"
# libxl removes it: online=0, then the directory.
xenstore-write "$be2/online" 0
xenstore-rm "$be2"

# A third device; the guest dies with it and the first in place.
add_disk 51744 "$dir/disk.img"
check "second device InitWait" "2" "$(wait_read "$be3/state" 2)"
xenstore-write "$be3/online" 0
check "online=0 -> Closed" "6" "$(wait_read "$be3/state" 6)"

for _ in $(seq 100); do grep -q "$be3: device removed" "$dir/netbusd.log" && break; sleep 0.05; done
check "online=0 device removed" "1" "$(grep -c "$be3: device removed" "$dir/netbusd.log" || true)"

"$xensim" destroy --dir "$dir" "$g"
for _ in $(seq 100); do grep -q "$be1: device removed" "$dir/netbusd.log" && break; sleep 0.05; done
check "destroyed guest's device removed" "1" "$(grep -c "$be1: device removed" "$dir/netbusd.log" || true)"
check "its backend Closed" "6" "$(xenstore-read "$be1/state")"

# Every log line about a device names it.
check "device lines name the device" "0" \
    "$(grep -E 'netbusd (error|warn|info|debug): ' "$dir/netbusd.log" | grep -v '/local/domain/' | grep -ciE 'device|frontend|state' || true)"

kill -TERM "$nbd"
rc=0; wait "$nbd" || rc=$?
check "SIGTERM: exit 0" "0" "$rc"
check "pid file removed" "no" "$([ -e "$dir/netbusd.pid" ] && echo yes || echo no)"

echo "netbusd-lifecycle: $pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
    echo "--- netbusd log"; cat "$dir/netbusd.log"
fi
[ "$fail" -eq 0 ]
