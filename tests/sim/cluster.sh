#!/usr/bin/env bash
# sim tier: the multi-host harness itself (`xensim cluster`). Three hosts,
# each in its own network namespace with its own xenstore and netbusd,
# joined by veth to a bridge in a hub namespace: layout file, separate
# xenstores, a guest disk on one host, TCP between hosts over the test
# subnet, a link taken down and brought back, nothing left in the root
# namespace, teardown. Then the loopback fallback (--loopback): said loudly,
# hosts still reach each other, link faults refused. Errors on the way.
# Needs root (namespaces); without it the namespace part says so and the
# loopback part still runs.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
xensim=$build/xensim
netbusd=$build/netbusd
xenfront=$build/xenfront
here=$(cd "$(dirname "$0")" && pwd)
peer=$here/lib/netpeer.pl
for b in "$xensim" "$netbusd" "$xenfront"; do
    [ -x "$b" ] || { echo "cluster: $b is not built"; exit 1; }
done
xensim=$(realpath "$xensim") netbusd=$(realpath "$netbusd") xenfront=$(realpath "$xenfront")
dir=$(mktemp -d "${TMPDIR:-/tmp}/nbc-XXXXXX")
lo=$dir/lo
cleanup() {
    for d in "$dir" "$lo"; do
        [ -f "$d/cluster.json" ] && timeout 30 "$xensim" cluster down --dir "$d" >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT

status_is() { # name expected-status command...
    local name=$1 want=$2; shift 2
    local got=0
    timeout 60 "$@" >"$dir/last.out" 2>&1 || got=$?
    if [ "$got" == "$want" ]; then pass=$((pass + 1)); echo "ok   $name"
    else fail=$((fail + 1)); echo "FAIL $name: exit $got, expected $want"; sed 's/^/     /' "$dir/last.out"; fi
}
cl() { "$xensim" cluster "$1" --dir "$dir" "${@:2}"; }
# tcp_ok FROM TO PORT [SECS]: a connection from host FROM reaches a
# listener on TO within SECS (default 10; a loaded machine can take
# seconds after a link comes up). The listener outlives the attempts: it
# is killed when they fail.
tcp_ok() {
    local from=$1 to=$2 port=$3 secs=${4:-10} addr out
    addr=$(cl addr "$to")
    cl exec "$to" -- perl "$peer" listen "$addr" "$port" $((secs + 10)) >"$dir/listen.out" 2>&1 &
    local lp=$!
    for _ in $(seq 50); do grep -q listening "$dir/listen.out" 2>/dev/null && break; sleep 0.1; done
    if cl exec "$from" -- perl "$peer" connect "$addr" "$port" "$secs" "from-$from"; then
        wait "$lp" || true
        out=$(sed 1d "$dir/listen.out")
        [ "$out" == "from-$from" ] && echo yes || echo "no (listener got [$out])"
    else
        kill "$lp" 2>/dev/null || true; wait "$lp" 2>/dev/null || true
        echo no
    fi
}

root_links_before=$(ip -o link 2>/dev/null | wc -l)
root_addrs_before=$(ip -o addr 2>/dev/null | awk '{print $4}' | sort | paste -sd' ')

# --- namespaces ---------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
    echo "cluster: NOT ROOT: network namespaces cannot be made; only the loopback part runs"
else
    status_is "up: three hosts with netbusd" 0 "$xensim" cluster up --dir "$dir" \
        --hosts a,b,c --subnet 10.77.0.0/24 --netbusd "$netbusd" --netbusd-arg=--log-level=info
    cat "$dir/last.out" | sed 's/^/     /'
    check "mode is netns" '"mode": "netns",' "$(grep -o '"mode": "[a-z]*",' "$dir/cluster.json")"
    check "addresses" "10.77.0.1 10.77.0.2 10.77.0.3" "$(for h in a b c; do cl addr "$h"; done | paste -sd' ')"
    check "list: all up" "a up up|b up up|c up up" \
        "$(cl list | awk 'NR>1 {print $1, $3, $4}' | paste -sd'|')"
    check "each host in its own namespace" "3" \
        "$(for h in a b c; do cl exec "$h" -- readlink /proc/self/ns/net; done | sort -u | wc -l)"
    check "exec sets the host's environment" "b $dir/b 10.77.0.2" \
        "$(cl exec b -- sh -c 'echo $XENSIM_CLUSTER_HOST $XENSIM_DIR $XENSIM_CLUSTER_ADDR')"
    check "a host sees only lo and eth0" "eth0 lo" \
        "$(cl exec a -- ip -o link | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | paste -sd' ')"
    check "no default route inside a host" "" "$(cl exec a -- ip route show default)"

    # Separate xenstores: a guest made on a is not on b.
    ga=$(cl exec a -- "$xensim" create --name guest-a --memory 64)
    check "guest on a is listed on a" "guest-a" "$(cl exec a -- "$xensim" list | awk -v id="$ga" '$1 == id {print $2}')"
    check "and not on b" "" "$(cl exec b -- "$xensim" list | awk '$2 == "guest-a"')"
    check "xenstores differ" "guest-a|" \
        "$(cl exec a -- xenstore-read "/local/domain/$ga/name")|$(cl exec b -- xenstore-read "/local/domain/$ga/name" 2>/dev/null || true)"

    # The host's netbusd serves its guests.
    truncate -s 16M "$dir/b-disk.img"
    gb=$(cl exec b -- "$xensim" create --name guest-b --memory 64)
    status_is "b: attach a disk" 0 "$xensim" cluster exec --dir "$dir" b -- \
        "$xensim" block-attach guest-b "$dir/b-disk.img" xvda --timeout 10
    status_is "b: guest verifies its disk through b's netbusd" 0 "$xensim" cluster exec --dir "$dir" b -- \
        "$xensim" run --domid "$gb" -- "$xenfront" blk verify --vdev xvda --ops 300 --qd 8 \
        --initial zero --model-out "$dir/b.model"
    status_is "b: dom0 file check" 0 "$xenfront" blk check-file --model "$dir/b.model" --file "$dir/b-disk.img"
    check "a's netbusd saw no disk" "no" \
        "$(grep -q 'vbd/' "$dir/a/netbusd.log" && echo yes || echo no)"

    # TCP across the bridge, a link down and up.
    check "tcp b -> a" yes "$(tcp_ok b a 9301)"
    check "tcp c -> b" yes "$(tcp_ok c b 9302)"
    status_is "link b down" 0 "$xensim" cluster link --dir "$dir" b down
    check "b sees no carrier" "yes" "$(cl exec b -- ip link show eth0 | grep -q NO-CARRIER && echo yes || echo no)"
    check "tcp b -> a while b is down (2 s of attempts)" no "$(tcp_ok b a 9303 2)"
    check "tcp c -> a while b is down" yes "$(tcp_ok c a 9304)"
    status_is "link b up" 0 "$xensim" cluster link --dir "$dir" b up
    check "tcp b -> a again" yes "$(tcp_ok b a 9305)"

    check "root namespace: no new link" "$root_links_before" "$(ip -o link | wc -l)"
    check "root namespace: no new address" "$root_addrs_before" "$(ip -o addr | awk '{print $4}' | sort | paste -sd' ')"

    # Errors.
    status_is "up over a running cluster" 1 "$xensim" cluster up --dir "$dir" --hosts x
    status_is "exec: unknown host" 1 "$xensim" cluster exec --dir "$dir" z -- true
    status_is "exec: no command" 2 "$xensim" cluster exec --dir "$dir" a
    status_is "link: bad state" 2 "$xensim" cluster link --dir "$dir" a sideways
    status_is "addr: unknown host" 1 "$xensim" cluster addr --dir "$dir" q
    status_is "up: bad subnet" 2 "$xensim" cluster up --dir "$dir/x" --hosts a --subnet 10.77.0.0/31
    status_is "up: bad host name" 2 "$xensim" cluster up --dir "$dir/x" --hosts 'a,B!'
    status_is "up: same host twice" 2 "$xensim" cluster up --dir "$dir/x" --hosts a,a
    status_is "up: no room in the subnet" 2 "$xensim" cluster up --dir "$dir/x" --hosts a,b,c --subnet 10.77.0.0/30
    status_is "down: no cluster" 1 "$xensim" cluster down --dir "$dir/x"

    ns_a=$(cl netns a)
    # A process started in a host by the test is stopped by down too (once
    # it is in the host's namespace: down cannot see it before).
    (cl exec c -- sleep 300 || true) 2>/dev/null &
    sleeper=$!
    ns_c=$(cl netns c)
    for _ in $(seq 100); do
        ip netns pids "$ns_c" | xargs -r ps -o args= -p | grep -qx 'sleep 300' && break
        sleep 0.05
    done
    status_is "down" 0 "$xensim" cluster down --dir "$dir"
    for _ in $(seq 100); do kill -0 "$sleeper" 2>/dev/null || break; sleep 0.05; done
    check "down: the process started in c stopped" no "$(kill -0 "$sleeper" 2>/dev/null && echo yes || echo no)"
    kill "$sleeper" 2>/dev/null || true; wait "$sleeper" 2>/dev/null || true
    check "down: namespaces gone" "" "$(ip netns list | grep -F "${ns_a%-a}" || true)"
    check "down: processes gone" "" "$(pgrep -f "$dir/[abc]" || true)"
    check "down: layout file gone" "no" "$([ -e "$dir/cluster.json" ] && echo yes || echo no)"
    check "root namespace unchanged after down" "$root_links_before" "$(ip -o link | wc -l)"
fi

# --- loopback fallback ---------------------------------------------------------
mkdir -p "$lo"
"$xensim" cluster up --dir "$lo" --hosts p,q --loopback --netbusd "$netbusd" >"$dir/lo.out" 2>"$dir/lo.err"
check "loopback: said loudly" "yes" "$(grep -q 'WARNING: NO NETWORK NAMESPACES' "$dir/lo.err" && echo yes || echo no)"
check "loopback: in the layout file" '"mode": "loopback",' "$(grep -o '"mode": "[a-z]*",' "$lo/cluster.json")"
check "loopback: warning in the layout file" "yes" "$(grep -q '"warning": "network namespaces could not' "$lo/cluster.json" && echo yes || echo no)"
paddr=$("$xensim" cluster addr --dir "$lo" p)
check "loopback: 127/8 addresses" "yes" "$([[ $paddr == 127.* ]] && echo yes || echo no)"
saved=$dir; dir=$lo
check "loopback: tcp q -> p" yes "$(tcp_ok q p 9306)"
dir=$saved
status_is "loopback: link faults refused" 1 "$xensim" cluster link --dir "$lo" p down
check "loopback: netbusd up on both" "up up" "$("$xensim" cluster list --dir "$lo" 2>/dev/null | awk 'NR>1 {print $4}' | paste -sd' ')"
status_is "loopback: down" 0 "$xensim" cluster down --dir "$lo"
check "loopback: processes gone" "" "$(pgrep -f "$lo/[pq]" || true)"

if grep -q 'AddressSanitizer\|runtime error' "$dir"/*/host.log "$dir"/*/netbusd.log "$lo"/*/*.log 2>/dev/null; then
    fail=$((fail + 1)); echo "FAIL sanitizer reports"
    grep -h 'AddressSanitizer\|runtime error' "$dir"/*/*.log "$lo"/*/*.log | head
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
