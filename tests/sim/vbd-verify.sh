#!/usr/bin/env bash
# sim tier: disks end to end. One xensim host, netbusd serving vbd and qdisk,
# three guests with five disks given the way xl does (xensim block-attach).
# The reference blkfront runs `verify` in every guest on every disk at once
# (random offsets and sizes up to indirect requests, flushes, discards,
# every byte read back), in different frontend configurations: multi-page
# ring, multi-queue, single page ring, grants kept or revoked per request,
# direct requests only. The backing files
# are then checked from dom0 against the models the guests saved. A disk is
# detached and attached read-only to another guest (its data must be the
# first guest's, writes refused), detached while a guest is using it, and
# attached back writable; a frontend is killed mid-I/O and the next one
# takes over. The toolstack's xenstore permissions and its answers to wrong
# input are checked on the way.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
xensim=$build/xensim
netbusd=$build/netbusd
xenfront=$build/xenfront
OPS=${VBD_VERIFY_OPS:-2500}
for b in "$xensim" "$netbusd" "$xenfront"; do
    [ -x "$b" ] || { echo "vbd-verify: $b is not built"; exit 1; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/netbus-vbd-XXXXXX")
trap stop_all EXIT

"$xensim" host --dir "$dir" --log-level warn 2>"$dir/host.log" &
pids+=($!)
"$xensim" wait --dir "$dir" --timeout 10
export XENSIM_DIR=$dir XENSTORED_RUNDIR=$dir
"$netbusd" --xensim-dir "$dir" --log-level info 2>"$dir/netbusd.log" &
netbusd_pid=$!
pids+=($netbusd_pid)

a=$("$xensim" create --name alice --memory 256)
b=$("$xensim" create --name bob --memory 256)
c=$("$xensim" create --name carol --memory 256)
for d in a1:64M a2:32M b1:48M b2:16M c1:32M; do
    truncate -s "${d#*:}" "$dir/${d%%:*}.img"
done

# --- the toolstack ----------------------------------------------------------
status_is "attach alice xvda" 0 "$xensim" block-attach alice "$dir/a1.img" xvda
status_is "attach alice xvdb" 0 "$xensim" block-attach alice "$dir/a2.img" xvdb
status_is "attach bob xvda (qdisk)" 0 "$xensim" block-attach bob "$dir/b1.img" xvda --type qdisk
status_is "attach bob 51728" 0 "$xensim" block-attach "$b" "$dir/b2.img" 51728
status_is "attach carol xvda" 0 "$xensim" block-attach carol "$dir/c1.img" xvda

be=/local/domain/0/backend/vbd/$a/51712
fe=/local/domain/$a/device/vbd/51712
check "backend dir: owner dom0, guest reads" "n0 r$a" \
    "$(xenstore-ls -p "$be" | sed -n 's/^frontend-id = .*(\(.*\))$/\1/p' | tr ',' ' ')"
check "frontend dir: owner guest, backend reads" "n$a r0" \
    "$(xenstore-ls -p "$fe" | sed -n 's/^backend-id = .*(\(.*\))$/\1/p' | tr ',' ' ')"
check "backend keys" "$a 1 w disk 1 $dir/a1.img xvda phy" \
    "$(for k in frontend-id online mode device-type discard-enable params dev type; do xenstore-read "$be/$k"; done | tr '\n' ' ' | sed 's/ $//')"
check "frontend keys" "$be 0 51712 disk" \
    "$(for k in backend backend-id virtual-device device-type; do xenstore-read "$fe/$k"; done | tr '\n' ' ' | sed 's/ $//')"
check "qdisk params" "aio:$dir/b1.img" "$(xenstore-read /local/domain/0/backend/qdisk/$b/51712/params)"
check "libxl's copy" "$be" "$(xenstore-read /libxl/$a/device/vbd/51712/backend)"
check "block-list" "xvda 51712 vbd InitWait w|xvdb 51728 vbd InitWait w" \
    "$("$xensim" block-list alice | awk 'NR>1 {print $1, $2, $4, $6, $7}' | paste -sd'|')"
status_is "other guest cannot read the frontend dir" 1 \
    "$xensim" run --domid "$b" -- xenstore-read "$fe/backend"
status_is "other guest cannot read the backend dir" 1 \
    "$xensim" run --domid "$b" -- xenstore-read "$be/params"
status_is "guest reads its backend dir" 0 \
    "$xensim" run --domid "$a" -- xenstore-read "$be/params"
status_is "guest cannot write its backend dir" 1 \
    "$xensim" run --domid "$a" -- xenstore-write "$be/params" /etc/shadow
status_is "attach: same vdev twice" 1 "$xensim" block-attach alice "$dir/c1.img" xvda
status_is "attach: missing file" 1 "$xensim" block-attach alice "$dir/nope.img" xvdc
status_is "attach: bad vdev" 2 "$xensim" block-attach alice "$dir/c1.img" hda0x
status_is "attach: bad mode" 2 "$xensim" block-attach alice "$dir/c1.img" xvdc --mode x
status_is "attach: bad type" 2 "$xensim" block-attach alice "$dir/c1.img" xvdc --type tap
status_is "attach: unknown guest" 1 "$xensim" block-attach nobody "$dir/c1.img" xvdc
status_is "attach: missing argument" 2 "$xensim" block-attach alice "$dir/c1.img"
status_is "detach: no such disk" 1 "$xensim" block-detach alice xvdq
status_is "frontend: no such disk" 1 "$xensim" run --domid "$a" -- "$xenfront" blk info --vdev xvdq --timeout 2

# --- verify everywhere at once ------------------------------------------------
vpids=()
verify() { # tag domain vdev extra-args...
    local tag=$1 dom=$2 vdev=$3; shift 3
    "$xensim" run --domid "$dom" -- "$xenfront" blk verify --vdev "$vdev" \
        --initial zero --ops "$OPS" --model-out "$dir/$tag.model" "$@" \
        >"$dir/$tag.out" 2>"$dir/$tag.err" &
    vpids+=("$tag:$!")
}
verify a1 "$a" xvda --qd 32
verify a2 "$a" xvdb --qd 8 --discard-zeroes
verify b1 "$b" xvda --qd 16 --queues 4
verify b2 "$b" xvdb --qd 4 --ring-order 0 --no-persistent
verify c1 "$c" xvda --qd 16 --max-indirect 0 --reuse-grants
for tp in "${vpids[@]}"; do
    tag=${tp%%:*}
    rc=0; wait "${tp#*:}" || rc=$?
    if [ "$rc" == 0 ] && grep -q 'result=ok' "$dir/$tag.out"; then
        pass=$((pass + 1)); echo "ok   verify $tag: $(grep -o 'writes=[0-9]*\|reads=[0-9]*\|flushes=[0-9]*\|discards=[0-9]*\|indirect=[0-9]*' "$dir/$tag.out" | tr '\n' ' ')"
    else
        fail=$((fail + 1)); echo "FAIL verify $tag (exit $rc)"; sed 's/^/     /' "$dir/$tag.out" "$dir/$tag.err" | head -20
    fi
done
check "indirect requests were used" "yes" \
    "$(grep -q 'indirect=[1-9]' "$dir/a1.out" && echo yes || echo no)"
check "direct-only frontend sent none" "yes" \
    "$(grep -q ' indirect=0 ' "$dir/c1.out" && echo yes || echo no)"
check "flushes and discards were used" "yes" \
    "$(grep -q 'flushes=[1-9].*discards=[1-9]' "$dir/b1.out" && echo yes || echo no)"
for t in a1 a2 b1 b2 c1; do
    status_is "dom0 sees what the guest wrote: $t.img" 0 \
        "$xenfront" blk check-file --model "$dir/$t.model" --file "$dir/$t.img"
done

# --- detach, read-only elsewhere, back ----------------------------------------
# The frontend is Closed: the backend must answer the toolstack's Closing
# with Closed (Linux's xenbus_dev_remove does), not leave libxl to time out.
status_is "detach alice xvdb" 0 "$xensim" block-detach alice xvdb --timeout 5
check "detach: backend closed, no forced removal" "no" \
    "$(grep -q 'removing it anyway' "$dir/last.out" && echo yes || echo no)"
check "detached: nodes gone" "gone gone gone" \
    "$(for p in /local/domain/0/backend/vbd/$a/51728 /local/domain/$a/device/vbd/51728 /libxl/$a/device/vbd/51728; do xenstore-read "$p/state" >/dev/null 2>&1 && echo there || echo gone; done | paste -sd' ')"
check "block-list after detach" "xvda" "$("$xensim" block-list alice | awk 'NR>1 {print $1}' | paste -sd' ')"
status_is "attach alice's disk read-only to carol" 0 \
    "$xensim" block-attach carol "$dir/a2.img" xvdb --mode r
check "read-only mode key" "r" "$(xenstore-read /local/domain/0/backend/vbd/$c/51728/mode)"
status_is "carol reads alice's data, writes refused" 0 \
    "$xensim" run --domid "$c" -- "$xenfront" blk verify --vdev xvdb --expect-readonly \
        --model-in "$dir/a2.model" --ops 400 --qd 8
check "read-only: writes were refused" "yes" \
    "$(grep -q 'ro_rejected=[1-9]' "$dir/last.out" && echo yes || echo no)"
status_is "read-only: file unchanged" 0 \
    "$xenfront" blk check-file --model "$dir/a2.model" --file "$dir/a2.img"
status_is "writable disk is not read-only" 1 \
    "$xensim" run --domid "$c" -- "$xenfront" blk verify --vdev xvda --expect-readonly --ops 1

# Detach while the guest drives I/O: the frontend sees its backend go and
# fails cleanly; the toolstack finishes.
"$xensim" run --domid "$c" -- "$xenfront" blk load --vdev xvdb --rw randread --qd 8 \
    --seconds 60 >"$dir/load.out" 2>&1 &
lpid=$!
for _ in $(seq 100); do
    [ "$(xenstore-read /local/domain/$c/device/vbd/51728/state 2>/dev/null)" == 4 ] && break
    sleep 0.1
done
status_is "detach a disk in use" 0 "$xensim" block-detach carol xvdb --timeout 10
check "detach in use: backend closed, no forced removal" "no" \
    "$(grep -q 'removing it anyway' "$dir/last.out" && echo yes || echo no)"
lrc=0; wait "$lpid" || lrc=$?
check "the guest's frontend stopped with an error" "1" "$lrc"
check "it said why" "yes" "$(grep -q 'went Closing\|went Closed\|went Unknown' "$dir/load.out" && echo yes || echo no)"

status_is "reattach to alice writable" 0 "$xensim" block-attach alice "$dir/a2.img" xvdb
status_is "alice continues from her model" 0 \
    "$xensim" run --domid "$a" -- "$xenfront" blk verify --vdev xvdb \
        --model-in "$dir/a2.model" --model-out "$dir/a2.model" --ops 500 --qd 8 --discard-zeroes
status_is "dom0 check after reattach" 0 \
    "$xenfront" blk check-file --model "$dir/a2.model" --file "$dir/a2.img"
status_is "a second verify run on a used disk" 0 \
    "$xensim" run --domid "$a" -- "$xenfront" blk verify --vdev xvda \
        --model-in "$dir/a1.model" --ops 300 --queues 2

# A guest's frontend killed in the middle of I/O; the next one resets the
# backend (Closing, Closed, Initialising, as Linux after kexec) and works.
"$xensim" run --domid "$a" -- "$xenfront" blk load --vdev xvda --rw randwrite --qd 32 \
    --seconds 60 >/dev/null 2>&1 &
kpid=$!
for _ in $(seq 100); do
    [ "$(xenstore-read /local/domain/$a/device/vbd/51712/state 2>/dev/null)" == 4 ] && break
    sleep 0.1
done
sleep 0.5
kill -KILL "$kpid"; wait "$kpid" 2>/dev/null || true
check "killed frontend left the backend Connected" "4" \
    "$(xenstore-read /local/domain/0/backend/vbd/$a/51712/state)"
status_is "a new frontend resets it and verifies" 0 \
    "$xensim" run --domid "$a" -- "$xenfront" blk verify --vdev xvda --ops 300 --qd 8

check "netbusd is still running" "yes" "$(kill -0 "$netbusd_pid" 2>/dev/null && echo yes || echo no)"
if grep -q 'AddressSanitizer\|runtime error' "$dir/netbusd.log" "$dir"/*.err 2>/dev/null; then
    fail=$((fail + 1)); echo "FAIL sanitizer reports"; grep -h 'AddressSanitizer\|runtime error' "$dir/netbusd.log" "$dir"/*.err | head
fi
kill -TERM "$netbusd_pid"
nrc=0; wait "$netbusd_pid" || nrc=$?
check "netbusd exits 0 on SIGTERM" "0" "$nrc"

if [ "$fail" -ne 0 ]; then
    echo "--- netbusd log (last 30 lines)"; tail -30 "$dir/netbusd.log"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
