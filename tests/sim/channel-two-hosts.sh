#!/usr/bin/env bash
# sim tier: a disk across the netbus channel, with faults. Simulated hosts
# a, b and c (`xensim cluster`: own network namespaces joined by veth, own
# xenstore, own netbusd). a exports a file disk; a guest on b gets it as
# netbus://a/EXPORT and runs the reference blkfront's verify against it
# (random offsets and sizes, flushes, discards, every byte read back). Then
# one long verify runs while faults are injected:
#   - a's link is down for 3 s;
#   - netbusd on a is killed (SIGKILL) and started again;
#   - c sends garbage to a's port (many connections, several kinds);
#   - c's netbusd, holding a wrong key, asks a for the disk through a
#     recording relay: it must get a refusal and nothing else (no export
#     name, no size, no data).
# The verify must pass: no byte wrong; then dom0 on a checks the backing file
# against the model the guest saved, so no acknowledged write was lost.
# Needs root for the namespaces.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
here=$(cd "$(dirname "$0")" && pwd)
peer=$here/lib/netpeer.pl
OPS=${CHANNEL_VERIFY_OPS:-2000}
FAULT_SECS=${CHANNEL_FAULT_SECS:-45}
for b in xensim netbusd netbusctl xenfront; do
    [ -x "$build/$b" ] || { echo "channel-two-hosts: $build/$b is not built"; exit 1; }
done
xensim=$(realpath "$build/xensim") netbusd=$(realpath "$build/netbusd")
netbusctl=$(realpath "$build/netbusctl") xenfront=$(realpath "$build/xenfront")
. "$(dirname "$0")/lib/cluster.sh"
cluster_start channel-two-hosts nbch

port=7797
key_ok=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
key_bad=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '# cluster key of a and b\n* %s\n' "$key_ok" >"$dir/keys.ab"
printf '# a key a does not know\n* %s\n' "$key_bad" >"$dir/keys.c"
chmod 600 "$dir/keys.ab" "$dir/keys.c"

# netbusd on host H with key file K, serving the channel on H's address.
start_netbusd() { # host keyfile
    local h=$1 k=$2 addr
    addr=$(cl addr "$h")
    # exec'd, not through a function: $! is netbusd itself
    "$xensim" cluster exec --dir "$dir" "$h" -- "$netbusd" --xensim-dir "$dir/$h" \
        --name "$h" --listen "$addr:$port" --keys "$k" --log-level info \
        >>"$dir/$h/netbusd.log" 2>&1 &
    eval "nb_$h=\$!"
    pids+=($!)
    wait_listening channel-two-hosts "$h" "$addr" "$port"
}

cl up --hosts a,b,c >"$dir/up.out"
a_addr=$(cl addr a)
start_netbusd a "$dir/keys.ab"
start_netbusd b "$dir/keys.ab"
start_netbusd c "$dir/keys.c"

img=$dir/a/disk0.img
size=$((64 * 1024 * 1024 + 28 * 1024))   # a size no header field holds by chance
truncate -s "$size" "$img"
status_is "a: export the disk" 0 on a "$netbusctl" export disk0 "$img"
url="netbus://$a_addr:$port/disk0"

# --- a guest on b uses a's disk -------------------------------------------------
gb=$(on b "$xensim" create --name guest-b --memory 128)
status_is "b: attach $url" 0 on b "$xensim" block-attach guest-b "$url" xvda --timeout 20
check "b: backend params is the URL" "$url" "$(on b xenstore-read "/local/domain/0/backend/vbd/$gb/51712/params")"
guest_b() { on b "$xensim" run --domid "$gb" -- "$xenfront" "$@"; }
status_is "b: guest verifies a's disk" 0 guest_b blk verify --vdev xvda --initial zero \
    --ops "$OPS" --qd 16 --model-out "$dir/m1.model"
cp "$dir/last.out" "$dir/verify1.out"
check "verify used flushes and discards" "yes" \
    "$(grep -q 'flushes=[1-9].*discards=[1-9]' "$dir/verify1.out" && echo yes || echo no)"
status_is "a: dom0 sees what the guest on b wrote" 0 on a "$xenfront" blk check-file \
    --model "$dir/m1.model" --file "$img"
check "b's netbusd served no local file" "no" "$(grep -q "$img" "$dir/b/netbusd.log" && echo yes || echo no)"

# --- faults during a long verify ------------------------------------------------
guest_b blk verify --vdev xvda --model-in "$dir/m1.model" --model-out "$dir/m2.model" \
    --seconds "$FAULT_SECS" --qd 16 --timeout 60 >"$dir/verify2.out" 2>"$dir/verify2.err" &
vpid=$!
pids+=($vpid)
sleep 3

echo "--   fault: a's link down for 3 s"
status_is "link a down" 0 "$xensim" cluster link --dir "$dir" a down
sleep 3
status_is "link a up" 0 "$xensim" cluster link --dir "$dir" a up
sleep 4

echo "--   fault: netbusd on a killed (SIGKILL) and started again"
kill -KILL "$nb_a"
wait "$nb_a" 2>/dev/null || true
sleep 1
start_netbusd a "$dir/keys.ab"
# The export registry lives in a's xenstore: the new netbusd takes it up.
check "a: the export is back after the restart" "yes" \
    "$(on a "$netbusctl" list 2>/dev/null | grep -qw disk0 && echo yes || echo no)"
sleep 4

echo "--   fault: c sends garbage to a's port"
status_is "garbage from c" 0 on c perl "$peer" garbage "$a_addr" "$port" 30 25 "$dir/garbage.got"
check "a's netbusd survived the garbage" "yes" "$(kill -0 "$nb_a" 2>/dev/null && echo yes || echo no)"
check "garbage got no export name" "no" "$(grep -q disk0 "$dir/garbage.got" && echo yes || echo no)"

echo "--   fault: c asks with a wrong key"
c_addr=$(cl addr c)
"$xensim" cluster exec --dir "$dir" c -- perl "$peer" proxy "$c_addr" 7798 "$a_addr" "$port" 25 \
    "$dir/wrongkey.log" >"$dir/proxy.out" 2>&1 &
ppid=$!
pids+=($ppid)
wait_for 5 grep -q listening "$dir/proxy.out" || true
gc=$(on c "$xensim" create --name guest-c --memory 64)
status_is "c: a wrong-key import does not connect" 1 on c "$xensim" block-attach guest-c \
    "netbus://$c_addr:7798/disk0" xvda --timeout 8
status_is "c's guest cannot use it" 1 on c "$xensim" run --domid "$gc" -- "$xenfront" blk info --vdev xvda --timeout 3
wait "$ppid" 2>/dev/null || true
from_a=$(sed -n 's/^<- //p' "$dir/wrongkey.log" | tr -d '\n')
check "wrong key: a answered something (the refusal)" "yes" "$([ -n "$from_a" ] && echo yes || echo no)"
name_hex=$(printf disk0 | od -An -tx1 | tr -d ' \n')
size_hex=$(printf '%016x' "$size" | sed 's/../& /g' | awk '{for (i = NF; i > 0; i--) printf "%s", $i}')
check "wrong key: no export name in what a sent" "no" "$([[ $from_a == *"$name_hex"* ]] && echo yes || echo no)"
check "wrong key: no disk size in what a sent" "no" "$([[ $from_a == *"$size_hex"* ]] && echo yes || echo no)"
# The frames a sent, by type: 24-byte headers (magic "NBUS", version, type,
# flags, session, length LE, tag), then length bytes (backend/channel/PROTOCOL.md).
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
check "wrong key: a logged the refusal" "yes" \
    "$(grep -qi 'refus\|auth' "$dir/a/netbusd.log" && echo yes || echo no)"

check "the verify ran through every fault" "yes" "$(kill -0 "$vpid" 2>/dev/null && echo yes || echo no)"
rc=0; wait "$vpid" || rc=$?
check "verify under faults: exit status" 0 "$rc"
check "verify under faults: result ok, no mismatch" "yes" \
    "$(grep -q 'result=ok' "$dir/verify2.out" && grep -q 'mismatches=0' "$dir/verify2.out" && echo yes || echo no)"
sed 's/^/     /' "$dir/verify2.out"
[ "$rc" == 0 ] || sed 's/^/     /' "$dir/verify2.err" | tail -20
status_is "a: dom0 check after the faults" 0 on a "$xenfront" blk check-file \
    --model "$dir/m2.model" --file "$img"
check "b reconnected to a" "yes" "$(grep -qi 'reconnect\|connected to' "$dir/b/netbusd.log" && echo yes || echo no)"
status_is "b: a last verify from the model" 0 guest_b blk verify --vdev xvda \
    --model-in "$dir/m2.model" --ops 300 --qd 8

# netbusd stops cleanly everywhere (and a sanitized build reports leaks now).
on b "$xensim" block-detach guest-b xvda --timeout 10 >/dev/null 2>&1 || true
for h in a b c; do
    pid_var=nb_$h
    netbusd_stops "netbusd on $h" "${!pid_var}" 20
done
for h in a b c; do
    no_sanitizer_reports "on $h" "$dir/$h/netbusd.log" "$dir/$h/host.log"
done
if [ "$fail" -ne 0 ]; then
    for h in a b; do echo "--- netbusd on $h (last 30 lines)"; tail -30 "$dir/$h/netbusd.log"; done
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
