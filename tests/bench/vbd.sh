#!/usr/bin/env bash
# Benchmark: a disk through netbusd over xensim vs the same file raw.
# One file, one run, each case back to back:
#   baseline: fio, ioengine=io_uring, direct=1, on the file;
#   ours:     the reference blkfront (`xenfront blk load`) as a xensim guest,
#             through netbusd (vbd backend) on the same file.
# Cases: 4 KiB random read/write at queue depth 1 and 32 (IOPS), 1 MiB
# sequential read/write at queue depth 8 (MB/s, 10^6 bytes per second).
# Prints: BENCH vbd.<name> <value> <unit> baseline=<value> ratio=<ours/baseline>
# Environment: BENCH_SECONDS (per measurement, default 5), BENCH_VBD_SIZE
# (file size, default 1g), BENCH_DIR (where the file lives; needs O_DIRECT,
# so not tmpfs; default $TMPDIR or /tmp).
set -euo pipefail
build=${1:-build}
secs=${BENCH_SECONDS:-5}
size=${BENCH_VBD_SIZE:-1g}
base=${BENCH_DIR:-${TMPDIR:-/tmp}}
for b in xensim netbusd xenfront; do
    [ -x "$build/$b" ] || { echo "bench vbd: $build/$b is not built" >&2; exit 1; }
done
command -v fio >/dev/null || { echo "bench vbd: fio is not installed (make deps)" >&2; exit 1; }

dir=$(mktemp -d "$base/netbus-bench-vbd-XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
img=$dir/disk.img

# Lay the file out with real blocks so reads are not served from holes.
fio --name=layout --filename="$img" --size="$size" --rw=write --bs=1m \
    --ioengine=io_uring --direct=1 --iodepth=8 --end_fsync=1 >/dev/null

sim=$dir/sim
mkdir "$sim"
"$build/xensim" host --dir "$sim" --log-level warn 2>"$dir/host.log" &
pids+=($!)
"$build/xensim" wait --dir "$sim" --timeout 10
export XENSIM_DIR=$sim
"$build/netbusd" --xensim-dir "$sim" --log-level warn 2>"$dir/netbusd.log" &
pids+=($!)
guest=$("$build/xensim" create --name bench --memory 512)
"$build/xensim" block-attach "$guest" "$img" xvda

# fio_value RW BS QD FIELD: FIELD is iops or bw_bytes of the job's direction,
# from fio's terse v3 line (read bw KiB/s;iops = fields 7;8, write 48;49).
fio_value() {
    local rw=$1 bs=$2 qd=$3 field=$4 col
    case $rw:$field in
        *write:iops) col=49;; *write:bw_bytes) col=48;;
        *:iops) col=8;; *:bw_bytes) col=7;;
    esac
    fio --name=base --filename="$img" --size="$size" --rw="$rw" --bs="$bs" \
        --iodepth="$qd" --ioengine=io_uring --direct=1 --time_based \
        --runtime="$secs" --ramp_time=1 --randrepeat=0 --norandommap \
        --output-format=terse --terse-version=3 |
        awk -F';' -v c="$col" -v f="$field" \
            'NR == 1 { print (f == "bw_bytes" ? $c * 1024 : $c) }'
}
# ours_value RW BS QD FIELD: FIELD is iops or mbps of the LOAD line.
ours_value() {
    local rw=$1 bs=$2 qd=$3 field=$4 out
    out=$("$build/xensim" run --domid "$guest" -- "$build/xenfront" blk load \
          --vdev xvda --rw "$rw" --bs "$bs" --qd "$qd" --seconds "$secs" \
          --size "$size") || { echo "bench vbd: xenfront load failed" >&2; tail -5 "$dir/netbusd.log" >&2; exit 1; }
    sed -n "s/.* $field=\([0-9.]*\).*/\1/p" <<<"$out"
}
report() { # name value unit baseline
    awk -v n="$1" -v v="$2" -v u="$3" -v b="$4" 'BEGIN {
        printf "BENCH vbd.%s %.1f %s baseline=%.1f ratio=%.3f\n", n, v, u, b, (b > 0 ? v / b : 0) }'
}

run_case() { # name rw bs qd unit
    local name=$1 rw=$2 bs=$3 qd=$4 unit=$5 b o
    if [ "$unit" == IOPS ]; then
        b=$(fio_value "$rw" "$bs" "$qd" iops)
        o=$(ours_value "$rw" "$bs" "$qd" iops)
    else
        b=$(fio_value "$rw" "$bs" "$qd" bw_bytes)
        b=$(awk -v x="$b" 'BEGIN { print x / 1e6 }')
        o=$(ours_value "$rw" "$bs" "$qd" mbps)
    fi
    report "$name" "$o" "$unit" "$b"
}

run_case randread_4k_qd1   randread  4k 1  IOPS
run_case randread_4k_qd32  randread  4k 32 IOPS
run_case randwrite_4k_qd1  randwrite 4k 1  IOPS
run_case randwrite_4k_qd32 randwrite 4k 32 IOPS
run_case seqread_1m        read      1m 8  MB/s
run_case seqwrite_1m       write     1m 8  MB/s
