#!/usr/bin/env bash
# sim tier: the netbus channel on one xensim host. netbusd (host name
# hostA, a cluster key, listening on a loopback port) exports disk images
# with netbusctl; guests get them as device URLs: netbus://127.0.0.1:PORT/E
# goes through TCP to the export server of the same netbusd, netbus://hostA/E
# is served in-process (short-circuit). The reference blkfront verifies
# every byte on both at once, dom0 checks the files, `netbusctl list` shows
# the sessions, unexport is refused while they exist, a read-only export
# refuses writes, a missing export fails the device with a clear error.
# netbusd restarted with encryption required serves the exports it had
# (TLS 1.3) and the guest verifies again. Load numbers (plain TCP, TLS,
# in-process) are printed for the record, not checked.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
xensim=$build/xensim
netbusd=$build/netbusd
netbusctl=$build/netbusctl
xenfront=$build/xenfront
OPS=${CHANNEL_OPS:-1500}
LOAD_SECONDS=${CHANNEL_LOAD_SECONDS:-2}
for b in "$xensim" "$netbusd" "$netbusctl" "$xenfront"; do
    [ -x "$b" ] || { echo "channel-loopback: $b is not built"; exit 1; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/netbus-channel-XXXXXX")
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT

has() { # name pattern file
    if grep -q -- "$2" "$3"; then pass=$((pass + 1)); echo "ok   $1"
    else fail=$((fail + 1)); echo "FAIL $1: no '$2' in $3"; sed 's/^/     /' "$3" | tail -5; fi
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

"$xensim" host --dir "$dir" --log-level warn 2>"$dir/host.log" &
pids+=($!)
"$xensim" wait --dir "$dir" --timeout 10
export XENSIM_DIR=$dir XENSTORED_RUNDIR=$dir

port=$(free_port)
printf '* %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/keys"
chmod 644 "$dir/keys"
status_is "netbusd refuses a key file others can read" 1 \
    "$netbusd" --xensim-dir "$dir" --name hostA --listen "127.0.0.1:$port" --keys "$dir/keys"
has "it says how to fix it" "chmod 600" "$dir/last.out"
chmod 600 "$dir/keys"

start_netbusd() { # log extra-args...
    local log=$1; shift
    "$netbusd" --xensim-dir "$dir" --name hostA --listen "127.0.0.1:$port" \
        --keys "$dir/keys" --keepalive-ms 500 --io-timeout-ms 5000 \
        --log-level info "$@" 2>"$dir/$log" &
    nbd=$!
    pids+=($nbd)
    for _ in $(seq 100); do
        [ "$(xenstore-read /local/domain/0/netbus/listen 2>/dev/null)" == "127.0.0.1:$port" ] && break
        sleep 0.05
    done
}
start_netbusd netbusd.log
check "listen address in xenstore" "127.0.0.1:$port" "$(xenstore-read /local/domain/0/netbus/listen)"
check "node name in xenstore" "hostA" "$(xenstore-read /local/domain/0/netbus/node)"

for d in e1:64M e2:32M ro:16M b1:64M b2:64M; do truncate -s "${d#*:}" "$dir/${d%%:*}.img"; done
status_is "export e1" 0 "$netbusctl" export e1 "$dir/e1.img"
has "export says where" "netbus://hostA/e1" "$dir/last.out"
status_is "export e2" 0 "$netbusctl" export e2 "$dir/e2.img"
status_is "export ro (read-only)" 0 "$netbusctl" export ro "$dir/ro.img" --readonly
status_is "export b1, b2 (for load)" 0 \
    bash -c "'$netbusctl' export b1 '$dir/b1.img' && '$netbusctl' export b2 '$dir/b2.img'"
status_is "export: same name again" 1 "$netbusctl" export e1 "$dir/e2.img"
status_is "export: missing file" 1 "$netbusctl" export nofile "$dir/nope.img"
status_is "export: bad name" 2 "$netbusctl" export "bad/name" "$dir/e1.img"
status_is "export: not a disk" 1 "$netbusctl" export dirx "$dir"
has "netbusd's reason reaches the operator" "Is a directory" "$dir/last.out"
check "registry: e1" "ready vbd 67108864 0 hostA" \
    "$(for k in state kind size readonly owner; do xenstore-read /local/domain/0/netbus/exports/e1/$k; done | paste -sd' ')"
check "list" "b1 ready|b2 ready|e1 ready|e2 ready|ro ready" \
    "$("$netbusctl" list | awk 'NR>2 && !/^ / {print $1, $2}' | sort | paste -sd'|')"

a=$("$xensim" create --name alice --memory 256)
b=$("$xensim" create --name bob --memory 256)
status_is "attach netbus://127.0.0.1:$port/e1 (TCP)" 0 \
    "$xensim" block-attach alice "netbus://127.0.0.1:$port/e1" xvda
status_is "attach netbus://hostA/e2 (in-process)" 0 \
    "$xensim" block-attach bob netbus://hostA/e2 xvda
check "params kept as the URL" "netbus://127.0.0.1:$port/e1" \
    "$(xenstore-read /local/domain/0/backend/vbd/$a/51712/params)"
status_is "attach a missing export fails" 1 \
    "$xensim" block-attach alice "netbus://127.0.0.1:$port/nosuch" xvdb --timeout 5
has "the device error names it" "no export 'nosuch'" "$dir/netbusd.log"
status_is "attach the read-only export writable fails" 1 \
    "$xensim" block-attach bob "netbus://127.0.0.1:$port/ro" xvdb --timeout 5
has "the device error says read-only" "is read-only: attach it with mode r" "$dir/netbusd.log"
"$xensim" block-detach alice xvdb --timeout 5 >/dev/null 2>&1 || true
"$xensim" block-detach bob xvdb --timeout 5 >/dev/null 2>&1 || true

vpids=()
verify() { # tag domain vdev extra-args...
    local tag=$1 dom=$2 vdev=$3; shift 3
    "$xensim" run --domid "$dom" -- "$xenfront" blk verify --vdev "$vdev" \
        --initial zero --ops "$OPS" --model-out "$dir/$tag.model" "$@" \
        >"$dir/$tag.out" 2>"$dir/$tag.err" &
    vpids+=("$tag:$!")
}
verify e1 "$a" xvda --qd 32
verify e2 "$b" xvda --qd 16 --queues 2
sessions=$("$netbusctl" list | grep -c '^  session' || true)
for tp in "${vpids[@]}"; do
    tag=${tp%%:*}
    rc=0; wait "${tp#*:}" || rc=$?
    if [ "$rc" == 0 ] && grep -q 'result=ok' "$dir/$tag.out"; then
        pass=$((pass + 1)); echo "ok   verify $tag: $(grep -o 'writes=[0-9]*\|reads=[0-9]*\|flushes=[0-9]*\|discards=[0-9]*\|indirect=[0-9]*' "$dir/$tag.out" | tr '\n' ' ')"
    else
        fail=$((fail + 1)); echo "FAIL verify $tag (exit $rc)"; sed 's/^/     /' "$dir/$tag.out" "$dir/$tag.err" | head -20
    fi
done
check "two sessions while the guests run" "2" "$sessions"
for t in e1 e2; do
    status_is "dom0 sees what the guest wrote: $t.img" 0 \
        "$xenfront" blk check-file --model "$dir/$t.model" --file "$dir/$t.img"
done
"$netbusctl" list >"$dir/list.out"
# A session belongs to the guest (its domain UUID), not to the backend.
has "list shows e1's session (peer hostA, owner alice's UUID)" \
    "session [0-9]*: peer hostA, owner $("$xensim" list | awk '$2=="alice" {print $6}')" "$dir/list.out"
"$netbusctl" list --json >"$dir/list.json"
check "list --json parses, e1 has a session" "1" \
    "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len([e for e in d["exports"] if e["name"]=="e1"][0]["sessions"]))' "$dir/list.json")"
status_is "unexport refused while in use" 1 "$netbusctl" unexport e1
has "it names the session" "session [0-9]*: hostA" "$dir/last.out"

status_is "read-only export, mode r" 0 \
    "$xensim" block-attach bob "netbus://127.0.0.1:$port/ro" xvdb --mode r
status_is "read-only: writes refused" 0 \
    "$xensim" run --domid "$b" -- "$xenfront" blk verify --vdev xvdb --expect-readonly \
        --initial zero --ops 300 --qd 8
status_is "detach the read-only disk" 0 "$xensim" block-detach bob xvdb --timeout 5

load() { # label domain vdev
    for rw in randread randwrite; do
        "$xensim" run --domid "$2" -- "$xenfront" blk load --vdev "$3" --rw "$rw" \
            --bs 65536 --qd 32 --seconds "$LOAD_SECONDS" 2>/dev/null | tail -1 | \
            awk -v l="$1" '{print "     load", l, $2, $6, $7}'
    done
}
status_is "attach b1 over TCP, b2 in-process" 0 bash -c \
    "'$xensim' block-attach alice 'netbus://127.0.0.1:$port/b1' xvdb &&
     '$xensim' block-attach bob netbus://hostA/b2 xvdb"
load "plain TCP  " "$a" xvdb
load "in-process " "$b" xvdb
status_is "detach b1, b2" 0 bash -c \
    "'$xensim' block-detach alice xvdb --timeout 5 && '$xensim' block-detach bob xvdb --timeout 5"

# The export keeps its device after the guest goes.
status_is "detach e2 from bob" 0 "$xensim" block-detach bob xvda --timeout 5
check "e2 has no session after detach" "0" \
    "$("$netbusctl" list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len([e for e in d["exports"] if e["name"]=="e2"][0]["sessions"]))')"
status_is "unexport e2" 0 "$netbusctl" unexport e2
check "e2 gone from the registry" "gone" \
    "$(xenstore-read /local/domain/0/netbus/exports/e2/state >/dev/null 2>&1 && echo there || echo gone)"

# --- encryption required: netbusd restarted, exports opened again ----------
status_is "detach e1" 0 "$xensim" block-detach alice xvda --timeout 5
kill "$nbd"; wait "$nbd" 2>/dev/null || true
start_netbusd netbusd-tls.log --encrypt required
check "e1 opened again by the new netbusd" "ready" "$(xenstore-read /local/domain/0/netbus/exports/e1/state)"
status_is "attach e1 over TLS" 0 "$xensim" block-attach alice "netbus://127.0.0.1:$port/e1" xvda
status_is "verify over TLS, continuing from the model" 0 \
    "$xensim" run --domid "$a" -- "$xenfront" blk verify --vdev xvda \
        --model-in "$dir/e1.model" --model-out "$dir/e1.model" --ops 800 --qd 16
has "the connection is TLS 1.3" "authenticated server hostA, TLS 1.3" "$dir/netbusd-tls.log"
status_is "dom0 check after TLS" 0 \
    "$xenfront" blk check-file --model "$dir/e1.model" --file "$dir/e1.img"
status_is "attach b1 over TLS" 0 "$xensim" block-attach alice "netbus://127.0.0.1:$port/b1" xvdb
load "TLS 1.3    " "$a" xvdb
status_is "detach b1" 0 "$xensim" block-detach alice xvdb --timeout 5
status_is "detach e1 again" 0 "$xensim" block-detach alice xvda --timeout 5
status_is "unexport e1" 0 "$netbusctl" unexport e1

check "netbusd is still running" "yes" "$(kill -0 "$nbd" 2>/dev/null && echo yes || echo no)"
if grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$dir"/netbusd*.log "$dir"/*.err 2>/dev/null; then
    fail=$((fail + 1)); echo "FAIL sanitizer reports"; grep -h 'AddressSanitizer\|runtime error\|LeakSanitizer' "$dir"/netbusd*.log "$dir"/*.err | head
fi
kill "$nbd"; wait "$nbd" 2>/dev/null || true
if grep -q 'AddressSanitizer\|LeakSanitizer' "$dir"/netbusd*.log; then
    fail=$((fail + 1)); echo "FAIL sanitizer reports at exit"; grep -h -A5 'Sanitizer' "$dir"/netbusd*.log | head -20
fi
echo "channel-loopback: $pass passed, $fail failed"
[ "$fail" == 0 ]
