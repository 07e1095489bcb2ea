#!/usr/bin/env bash
# Benchmark: a disk across the netbus channel vs NBD over the same link.
# Two simulated hosts a and b (`xensim cluster`: network namespaces joined
# by veth through a bridge). One file on a, one run, each case back to back:
#   ours:      a guest on b, the reference blkfront (`xenfront blk load`)
#              -> netbusd on b -> netbus channel -> netbusd on a (export)
#              -> the file;
#   baseline:  `nbdkit file` on a serving the same file, fio's nbd engine
#              (libnbd) on b;
#   local:     a guest on a with the same file as a local netbus disk (for
#              channel.remote_vs_local_*);
#   raw TCP:   tcp_rtt (tests/bench/tcp_rtt.c) between a and b: 32-byte
#              request, 4 KiB + 32-byte answer, one in flight (for
#              channel.rtt_4k_qd1_us; channel.rtt_4k_qd1_vs_tcp_plus_local_us
#              has raw TCP plus the local disk's 4 KiB QD1 latency as its
#              baseline, the issue's latency goal being ratio <= 1.3);
#              and one connection's throughput each way, 1 MiB writes
#              (tcp_rtt stream): channel.seqread_1m_vs_tcp_stream (data
#              a -> b) and channel.seqwrite_1m_vs_tcp_stream (b -> a) have
#              it as their baseline, the ceiling of any protocol over one
#              connection of this link (NBD's too).
# The file lives on tmpfs by default (BENCH_CHANNEL_DIR, default /dev/shm),
# so both servers serve it from memory and the link and the protocols are
# what is measured (nbdkit 1.32's file plugin has no O_DIRECT).
# Cases: 4 KiB random read/write at queue depth 1 and 32 (IOPS), 1 MiB
# sequential read/write at queue depth 8 (MB/s, 10^6 bytes per second).
# Prints: BENCH channel.<name> <value> <unit> baseline=<value> ratio=<ours/baseline>
# and, for what the daemons spend: CPU channel.<name> lbe_us_per_req=<netbusd
# on b> export_us_per_req=<netbusd on a> (CPU time over the last remote run
# / its requests), and CPU channel.idle lbe_ms_per_s=.. export_ms_per_s=.. (CPU
# the two netbusds use over 2 s with the guests idle after the run).
# Environment: BENCH_SECONDS (per measurement, default 5),
# BENCH_CHANNEL_ROUNDS (netbus and nbdkit runs per case, taking turns;
# default 2), BENCH_CHANNEL_SIZE (file size, default 512m),
# BENCH_CHANNEL_DIR, BENCH_NETBUSD_ARGS (extra netbusd options for both
# hosts, e.g. "--poll-max-us 0").
set -euo pipefail
build=${1:-build}
secs=${BENCH_SECONDS:-5}
rounds=${BENCH_CHANNEL_ROUNDS:-2}
[[ "$rounds" =~ ^[1-9][0-9]?$ ]] || { echo "bench channel: BENCH_CHANNEL_ROUNDS must be 1 to 99 (got '$rounds')" >&2; exit 2; }
size=${BENCH_CHANNEL_SIZE:-512m}
base=${BENCH_CHANNEL_DIR:-/dev/shm}
here=$(cd "$(dirname "$0")" && pwd)
for b in xensim netbusd netbusctl xenfront; do
    [ -x "$build/$b" ] || { echo "bench channel: $build/$b is not built" >&2; exit 1; }
done
for t in fio nbdkit ip cc; do
    command -v "$t" >/dev/null || { echo "bench channel: $t is not installed (make deps)" >&2; exit 1; }
done
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "bench channel: this fio has no nbd engine" >&2; exit 1; }
[ "$(id -u)" == 0 ] || { echo "bench channel: needs root (network namespaces)" >&2; exit 1; }
xensim=$(realpath "$build/xensim") netbusd=$(realpath "$build/netbusd")
netbusctl=$(realpath "$build/netbusctl") xenfront=$(realpath "$build/xenfront")

# The raw TCP tool is built here, with the project's warnings.
rtt=$build/bench/tcp_rtt
if [ ! -x "$rtt" ] || [ "$here/tcp_rtt.c" -nt "$rtt" ]; then
    mkdir -p "$build/bench"
    cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
        -Wformat=2 -O2 -o "$rtt" "$here/tcp_rtt.c"
fi
rtt=$(realpath "$rtt")

dir=$(mktemp -d "${TMPDIR:-/tmp}/nbbench-XXXXXX")
data=$(mktemp -d "$base/netbus-bench-channel-XXXXXX")
cleanup() {
    [ -f "$dir/cluster.json" ] && timeout 30 "$xensim" cluster down --dir "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir" "$data"
}
trap cleanup EXIT
cl() { "$xensim" cluster "$1" --dir "$dir" "${@:2}"; }
on() { local h=$1; shift; "$xensim" cluster exec --dir "$dir" "$h" -- "$@"; }
fail() { echo "bench channel: $*" >&2; for h in a b; do [ -f "$dir/$h/netbusd.log" ] && tail -5 "$dir/$h/netbusd.log" >&2; done; exit 1; }

img=$data/disk.img
fio --name=layout --filename="$img" --size="$size" --rw=write --bs=1m \
    --ioengine=psync --end_fsync=1 >/dev/null
bytes=$(stat -c %s "$img")

cl up --hosts a,b >/dev/null
a_addr=$(cl addr a)
port=7797 nbd_port=10809 rtt_port=7799
printf '* %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/keys"
chmod 600 "$dir/keys"
wait_port() { # host addr port
    for _ in $(seq 100); do
        on "$1" perl -MIO::Socket::INET -e \
            'exit !IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Timeout => 1)' \
            "$2" "$3" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
for h in a b; do
    addr=$(cl addr "$h")
    # shellcheck disable=SC2086 # BENCH_NETBUSD_ARGS: options, split on purpose
    on "$h" "$netbusd" --xensim-dir "$dir/$h" --name "$h" --listen "$addr:$port" \
        --keys "$dir/keys" --log-level warn ${BENCH_NETBUSD_ARGS:-} >"$dir/$h/netbusd.log" 2>&1 &
    wait_port "$h" "$addr" "$port" || fail "netbusd on $h does not listen on $addr:$port"
done
on a "$netbusctl" export disk0 "$img" >/dev/null || fail "cannot export $img on a"
declare -A pid
for h in a b; do
    pid[$h]=$(pgrep -f "netbusd --xensim-dir $dir/$h " | head -1)
    [ -n "${pid[$h]}" ] || fail "no netbusd process for $h"
done
# cpu_ticks HOST: user + system CPU time netbusd used so far, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/${pid[$1]}/stat"; }
hz=$(getconf CLK_TCK)

# A guest on b with the remote disk, a guest on a with the local one.
gb=$(on b "$xensim" create --name bench-b --memory 512)
on b "$xensim" block-attach bench-b "netbus://$a_addr:$port/disk0" xvda --timeout 20 >/dev/null \
    || fail "cannot attach the remote disk on b"
ga=$(on a "$xensim" create --name bench-a --memory 512)
on a "$xensim" block-attach bench-a "$img" xvda --timeout 20 >/dev/null \
    || fail "cannot attach the local disk on a"

# nbdkit on a, same file.
on a nbdkit --foreground --exit-with-parent -i "$a_addr" -p "$nbd_port" file file="$img" \
    >"$dir/nbdkit.log" 2>&1 &
wait_port a "$a_addr" "$nbd_port" || fail "nbdkit does not listen on $a_addr:$nbd_port"

# load HOST DOMID RW BS QD FIELD: iops / mbps / lat_us of xenfront's LOAD line.
load() {
    local h=$1 dom=$2 rw=$3 bs=$4 qd=$5 field=$6 out
    out=$(on "$h" timeout $((secs + 60)) "$xensim" run --domid "$dom" -- "$xenfront" blk load \
          --vdev xvda --rw "$rw" --bs "$bs" --qd "$qd" --seconds "$secs" --size "$bytes") \
        || fail "xenfront load on $h failed ($rw $bs qd $qd)"
    echo "$out" >"$dir/last.load"
    sed -n "s/.* $field=\([0-9.]*\).*/\1/p" <<<"$out"
}
# nbd RW BS QD FIELD: fio's nbd engine on b against nbdkit on a; iops or
# bw_bytes (terse v3: read bw KiB/s;iops = fields 7;8, write 48;49).
nbd() {
    local rw=$1 bs=$2 qd=$3 field=$4 col
    case $rw:$field in
        *write:iops) col=49;; *write:bw_bytes) col=48;;
        *:iops) col=8;; *:bw_bytes) col=7;;
    esac
    on b timeout $((secs + 60)) fio --name=nbd --ioengine=nbd --uri="nbd://$a_addr:$nbd_port" \
        --size="$bytes" --rw="$rw" --bs="$bs" --iodepth="$qd" --time_based \
        --runtime="$secs" --ramp_time=1 --randrepeat=0 --norandommap \
        --output-format=terse --terse-version=3 2>/dev/null |
        awk -F';' -v c="$col" -v f="$field" \
            '/^3;/ { print (f == "bw_bytes" ? $c * 1024 / 1e6 : $c); exit }'
}
report() { # name value unit baseline
    awk -v n="$1" -v v="$2" -v u="$3" -v b="$4" 'BEGIN {
        printf "BENCH channel.%s %.1f %s baseline=%.1f ratio=%.3f\n", n, v, u, b, (b > 0 ? v / b : 0) }'
}

mean() { awk '{ s += $1 } END { if (NR) print s / NR }'; }

# The link's own ceiling for sequential I/O: one TCP connection carrying
# 1 MiB writes, in the direction of the data.
tcp_stream() { # from to: prints MB/s
    local to_addr spid mbps
    to_addr=$(cl addr "$2")
    on "$2" "$rtt" server "$to_addr" "$rtt_port" --timeout 30 >"$dir/stream-server.out" 2>&1 &
    spid=$!
    for _ in $(seq 100); do grep -q listening "$dir/stream-server.out" 2>/dev/null && break; sleep 0.1; done
    mbps=$(on "$1" "$rtt" stream "$to_addr" "$rtt_port" --seconds "$secs" | sed -n 's/.* mb_per_s=\([0-9.]*\).*/\1/p')
    wait "$spid" || fail "raw TCP stream $1 -> $2: the server failed"
    [ -n "$mbps" ] || fail "raw TCP stream $1 -> $2 failed"
    echo "$mbps"
}

declare -A remote local_ tcp
# run_case: nbdkit and netbus take turns, BENCH_CHANNEL_ROUNDS times each
# (the machine's speed drifts between runs seconds apart; alternating
# spreads the drift over both), with a raw TCP stream FROM -> TO in each
# round if given; then the local disk once. Each figure is the mean of its
# runs; every run is printed on stderr.
run_case() { # name rw bs qd unit [FROM TO]
    local name=$1 rw=$2 bs=$3 qd=$4 unit=$5 field b r ours=() base=() raw=()
    field=$([ "$unit" == IOPS ] && echo iops || echo mbps)
    local a0 b0 ops=0
    for ((r = 1; r <= rounds; r++)); do
        b=$(nbd "$rw" "$bs" "$qd" "$([ "$unit" == IOPS ] && echo iops || echo bw_bytes)")
        [ -n "$b" ] || fail "fio nbd gave no result ($rw $bs qd $qd)"
        base+=("$b")
        a0=$(cpu_ticks a) b0=$(cpu_ticks b)
        ours+=("$(load b "$gb" "$rw" "$bs" "$qd" "$field")")
        ops=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' "$dir/last.load")
        [ $# -lt 7 ] || raw+=("$(tcp_stream "$6" "$7")") # fails the bench itself if it fails
        echo "bench channel: $name round $r: netbus ${ours[-1]}, nbdkit $b${raw:+, TCP ${raw[-1]}} $unit" >&2
    done
    [ $# -lt 7 ] || tcp[$name]=$(printf '%s\n' "${raw[@]}" | mean)
    # CPU of the last netbus run
    awk -v n="$name" -v a=$(($(cpu_ticks a) - a0)) -v b=$(($(cpu_ticks b) - b0)) \
        -v hz="$hz" -v ops="$ops" 'BEGIN {
        printf "CPU channel.%s lbe_us_per_req=%.1f export_us_per_req=%.1f\n", n,
               b * 1e6 / hz / ops, a * 1e6 / hz / ops }'
    remote[$name]=$(printf '%s\n' "${ours[@]}" | mean)
    local_[$name]=$(load a "$ga" "$rw" "$bs" "$qd" "$field")
    report "$name" "${remote[$name]}" "$unit" "$(printf '%s\n' "${base[@]}" | mean)"
}
run_case randread_4k_qd1   randread  4k 1  IOPS
run_case randread_4k_qd32  randread  4k 32 IOPS
run_case randwrite_4k_qd1  randwrite 4k 1  IOPS
run_case randwrite_4k_qd32 randwrite 4k 32 IOPS
run_case seqread_1m        read      1m 8  MB/s a b
run_case seqwrite_1m       write     1m 8  MB/s b a
for name in randread_4k_qd1 randread_4k_qd32 randwrite_4k_qd1 randwrite_4k_qd32 seqread_1m seqwrite_1m; do
    unit=$([[ $name == seq* ]] && echo MB/s || echo IOPS)
    report "remote_vs_local_$name" "${remote[$name]}" "$unit" "${local_[$name]}"
done

report seqread_1m_vs_tcp_stream "${remote[seqread_1m]}" MB/s "${tcp[seqread_1m]}"
report seqwrite_1m_vs_tcp_stream "${remote[seqwrite_1m]}" MB/s "${tcp[seqwrite_1m]}"

# Round trip: netbus's 4 KiB read at QD1 (mean latency the guest sees) vs a
# raw TCP exchange of the same sizes on the same link.
on a "$rtt" server "$a_addr" "$rtt_port" --timeout 30 >"$dir/rtt-server.out" 2>&1 &
for _ in $(seq 100); do grep -q listening "$dir/rtt-server.out" 2>/dev/null && break; sleep 0.1; done
raw=$(on b "$rtt" client "$a_addr" "$rtt_port" --seconds "$secs" | sed -n 's/.* mean_us=\([0-9.]*\).*/\1/p')
[ -n "$raw" ] || fail "raw TCP round trip failed"
ours=$(load b "$gb" randread 4k 1 lat_us)
report rtt_4k_qd1_us "$ours" us "$raw"
# The latency goal: raw TCP plus what the same read costs on a local disk
# (the guest's ring and the export's file); ratio <= 1.3 meets it.
local_lat=$(load a "$ga" randread 4k 1 lat_us)
report rtt_4k_qd1_vs_tcp_plus_local_us "$ours" us \
    "$(awk -v r="$raw" -v l="$local_lat" 'BEGIN { print r + l }')"
# Idle: with the guests doing nothing, neither daemon may burn CPU (a busy
# poll that did not stop would show here).
sleep 1
a0=$(cpu_ticks a) b0=$(cpu_ticks b)
sleep 2
awk -v a=$(($(cpu_ticks a) - a0)) -v b=$(($(cpu_ticks b) - b0)) -v hz="$hz" 'BEGIN {
    printf "CPU channel.idle lbe_ms_per_s=%.1f export_ms_per_s=%.1f\n",
           b * 1000 / hz / 2, a * 1000 / hz / 2 }'
