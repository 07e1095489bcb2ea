#!/usr/bin/env bash
# Benchmark: a USB device used by a guest on the device's own host (local)
# and from another host across the netbus channel (remote), issue 7.
# Two simulated hosts a and b (`xensim cluster`: network namespaces joined
# by veth through a bridge). a's netbusd runs under usbdev (tests/usbdev),
# which gives it the emulated nb-bulk loopback device (bus id 1-1).
#   local:   a guest on a, nb-bulk on port 1 of its PV USB controller
#            (xenfront usb -> ring -> netbusd on a -> libusb -> device);
#   remote:  a's netbusd exports the device (`netbusctl export bulk
#            usb:1-1`), a guest on b has netbus://<a>:<port>/bulk on its
#            port (xenfront usb -> ring -> netbusd on b -> netbus channel
#            -> netbusd on a -> libusb -> device);
#   raw TCP: tcp_rtt (tests/bench/tcp_rtt.c) from b to a, one request in
#            flight, with the byte counts of the URB frames on the wire:
#            64 bytes out and 90 back for a control GET_DESCRIPTOR (frame
#            header 24 + URB head 40; reply head 48 + 18 bytes), 576 out
#            and 72 back for a 512-byte bulk OUT (a bulk IN moves the same
#            bytes the other way);
#   device:  libusb_rtt (tests/bench/libusb_rtt.c), a plain libusb program
#            under its own usbdev, no Xen and no netbus: what the emulated
#            device costs per URB by itself.
# Round trips come from `xenfront usb rtt` (one URB at a time, medians of
# BENCH_USB_COUNT each of control GET_DESCRIPTOR(device), 512-byte bulk OUT
# and 512-byte bulk IN). urb_rtt_bulk512_* is the mean of the bulk OUT
# median and the bulk IN median (one 512-byte bulk transfer, either
# direction). Throughput is `xenfront usb verify` for BENCH_SECONDS (bulk
# loopback of assorted sizes, 8 in flight, every byte checked; MB/s = 10^6
# bytes OUT + IN per second).
# Lines (BENCH usb.<name> <value> <unit> baseline=<value> ratio=<ours/baseline>):
#   urb_rtt_control_local, urb_rtt_control_remote,
#   urb_rtt_bulk512_local, urb_rtt_bulk512_remote   us, baseline = raw TCP
#   bulk_throughput_remote          MB/s, baseline = local MB/s
#                                   (the issue's goal: ratio >= 0.9)
#   remote_extra_control_us, remote_extra_bulk512_us
#                                   remote - local round trip, baseline = raw
#                                   TCP + 20 us: the issue's goal "remote
#                                   costs at most one network round trip
#                                   plus 20 us per URB" is ratio <= 1.0.
#                                   The emulated device itself takes most of
#                                   a millisecond per URB (umockdev: every
#                                   ioctl a round trip to usbdev's thread),
#                                   so the absolute round trips hide what
#                                   netbus adds; the difference shows it.
#   device_urb_rtt_control, device_urb_rtt_bulk512
#                                   us, the device alone (libusb_rtt),
#                                   baseline = the netbus local figure.
# Environment: BENCH_SECONDS (throughput runs and the TCP baseline, default
# 5), BENCH_USB_COUNT (URBs of each kind per round-trip run, default 2000),
# BENCH_USB_ROUNDS (local and remote runs alternate: local, remote this
# many times, then local once more; default 2),
# BENCH_USB_PIN (1: each host's daemons on a CPU of their own, see daemon();
# default 0: anywhere).
set -euo pipefail
build=${1:-build}
secs=${BENCH_SECONDS:-5}
count=${BENCH_USB_COUNT:-2000}
rounds=${BENCH_USB_ROUNDS:-2}
[[ "$rounds" =~ ^[1-9][0-9]?$ ]] || { echo "bench usb: BENCH_USB_ROUNDS must be 1 to 99 (got '$rounds')" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
for b in xensim netbusd netbusctl xenfront usbdev; do
    [ -x "$build/$b" ] || { echo "bench usb: $build/$b is not built (make usbdev for usbdev)" >&2; exit 1; }
done
for t in ip cc pkg-config perl; do
    command -v "$t" >/dev/null || { echo "bench usb: $t is not installed (make deps)" >&2; exit 1; }
done
[ "$(id -u)" == 0 ] || { echo "bench usb: needs root (network namespaces)" >&2; exit 1; }
xensim=$(realpath "$build/xensim") netbusd=$(realpath "$build/netbusd")
netbusctl=$(realpath "$build/netbusctl") xenfront=$(realpath "$build/xenfront")
usbdev=$(realpath "$build/usbdev")

# The helper tools are built here, with the project's warnings.
mkdir -p "$build/bench"
cflags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -O2)
tool() { # name [pkg-config package]
    local out=$build/bench/$1
    if [ ! -x "$out" ] || [ "$here/$1.c" -nt "$out" ]; then
        # shellcheck disable=SC2046 # pkg-config prints separate words
        cc "${cflags[@]}" ${2:+$(pkg-config --cflags "$2")} -o "$out" "$here/$1.c" \
            ${2:+$(pkg-config --libs "$2")}
    fi
    realpath "$out"
}
rtt=$(tool tcp_rtt)
libusb_rtt=$(tool libusb_rtt libusb-1.0)

dir=$(mktemp -d "${TMPDIR:-/tmp}/nbbench-usb-XXXXXX")
cleanup() {
    [ -f "$dir/cluster.json" ] && timeout 30 "$xensim" cluster down --dir "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
cl() { "$xensim" cluster "$1" --dir "$dir" "${@:2}"; }
on() { local h=$1; shift; "$xensim" cluster exec --dir "$dir" "$h" -- "$@"; }
# BENCH_USB_PIN=1 runs each host's daemons on a CPU of their own: a's
# netbusd (with usbdev's device, and libusb_rtt in its place) and the TCP
# server on CPU 0, b's netbusd and the TCP client on CPU 1; guests run
# anywhere. Two hosts are two machines, but here they share the CPUs, and
# on a 2-CPU machine the remote URB's export and LBE then wait for each
# other's CPU (remote round trips 80-120 us longer unpinned than pinned,
# measured on such a machine). Neither placement is two real hosts: with
# pinning, a's netbusd and the device share one CPU, which slows local
# round trips. Off by default: the unpinned figures are the worse ones.
declare -A cpu=([a]=0 [b]=1)
pin=()
if [ "${BENCH_USB_PIN:-0}" != 0 ] && [ "$(nproc)" -ge 2 ]; then
    pin=(taskset -c)
    echo "bench usb: host a's daemons run on CPU 0, host b's on CPU 1 (BENCH_USB_PIN=0: anywhere)" >&2
fi
daemon() { local h=$1; shift; on "$h" ${pin[@]:+"${pin[@]}" "${cpu[$h]}"} "$@"; }
fail() { echo "bench usb: $*" >&2; for h in a b; do [ -f "$dir/$h/netbusd.log" ] && tail -5 "$dir/$h/netbusd.log" >&2; done; exit 1; }

cl up --hosts a,b >/dev/null
a_addr=$(cl addr a) b_addr=$(cl addr b)
port=7797 rtt_port=7799
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
daemon a "$usbdev" --bulk -- "$netbusd" --xensim-dir "$dir/a" --name a --listen "$a_addr:$port" \
    --keys "$dir/keys" --log-level info >"$dir/a/netbusd.log" 2>&1 &
daemon b "$netbusd" --xensim-dir "$dir/b" --name b --listen "$b_addr:$port" \
    --keys "$dir/keys" --log-level info >"$dir/b/netbusd.log" 2>&1 &
for h in a b; do
    wait_port "$h" "$(cl addr "$h")" "$port" || fail "netbusd on $h does not listen on port $port"
done

report() { # name value unit baseline
    awk -v n="$1" -v v="$2" -v u="$3" -v b="$4" 'BEGIN {
        printf "BENCH usb.%s %.1f %s baseline=%.1f ratio=%.3f\n", n, v, u, b, (b > 0 ? v / b : 0) }'
}
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
# guest HOST NAME [DEVICE]: a guest with a PV USB controller, DEVICE on its
# port 1.
guest() {
    local dom
    dom=$(on "$1" "$xensim" create --name "$2" --memory 64) || fail "cannot create a guest on $1"
    on "$1" "$xensim" usbctrl-attach "$dom" >/dev/null || fail "usbctrl-attach on $1 failed"
    [ -z "${3:-}" ] || on "$1" "$xensim" usbdev-attach "$dom" "$3" --controller 0 --port 1 \
        --timeout 20 >/dev/null || fail "usbdev-attach $3 on $1 failed"
    echo "$dom"
}
fe() { # HOST DOMID ARGS...: xenfront usb in the guest
    on "$1" timeout 300 "$xensim" run --domid "$2" -- "$xenfront" usb "${@:3}"
}
urb_rtt() { # HOST DOMID -> "control bulk512"
    local out c o i
    out=$(fe "$1" "$2" rtt --port 1 --count "$count") || fail "xenfront usb rtt on $1 failed"
    c=$(field control_us "$out") o=$(field bulk512_out_us "$out") i=$(field bulk512_in_us "$out")
    [ -n "$c" ] && [ -n "$o" ] && [ -n "$i" ] || fail "xenfront usb rtt on $1: no result: $out"
    awk -v c="$c" -v o="$o" -v i="$i" 'BEGIN { print c, (o + i) / 2 }'
}
throughput() { # HOST DOMID -> MB/s
    local out
    out=$(fe "$1" "$2" verify --port 1 --seconds "$secs") || fail "xenfront usb verify on $1 failed: $out"
    grep -q 'result=ok' <<<"$out" || fail "xenfront usb verify on $1: $out"
    field MBps "$out"
}

# --- the device alone ----------------------------------------------------------
out=$(daemon a "$usbdev" --bulk -- "$libusb_rtt" --count "$count") || fail "libusb_rtt failed: $out"
dev_ctrl=$(field control_us "$out")
dev_bulk=$(awk -v o="$(field bulk512_out_us "$out")" -v i="$(field bulk512_in_us "$out")" \
    'BEGIN { print (o + i) / 2 }')

# --- local and remote, alternating ----------------------------------------------
# The emulated device's own time per URB drifts by tens of microseconds
# over a run (up to 90 us between two local runs a minute apart), as much
# as what netbus adds remotely. So the device goes back and forth between
# a's guest (local) and the export (remote) BENCH_USB_ROUNDS times, local
# runs once more at the end, and each figure is the mean of its runs.
ga=$(guest a bench-a 1-1)
gb=$(guest b bench-b)
runs_local=() runs_remote=() # "control bulk512 MB/s" of each run
measure() { # local|remote HOST DOMID: one run, kept in runs_local or runs_remote
    local r m
    r=$(urb_rtt "$2" "$3")
    m=$(throughput "$2" "$3")
    echo "bench usb: $1: control, bulk512 (us): $r; $m MB/s" >&2
    if [ "$1" = local ]; then runs_local+=("$r $m"); else runs_remote+=("$r $m"); fi
}
mean_of() { printf '%s\n' "$@" | awk '{ c += $1; b += $2; m += $3 } END { print c / NR, b / NR, m / NR }'; }
for _ in $(seq "$rounds"); do
    measure local a "$ga"
    # The port lets the device go, so that the export can claim it.
    on a "$xensim" usbdev-detach "$ga" 0 1 >/dev/null || fail "usbdev-detach on a failed"
    on a "$netbusctl" export bulk usb:1-1 --timeout 20 >/dev/null || fail "cannot export usb:1-1 on a"
    on b "$xensim" usbdev-attach "$gb" "netbus://$a_addr:$port/bulk" --controller 0 --port 1 \
        --timeout 20 >/dev/null || fail "usbdev-attach of the export on b failed"
    measure remote b "$gb"
    on b "$xensim" usbdev-detach "$gb" 0 1 >/dev/null || fail "usbdev-detach on b failed"
    on a "$netbusctl" unexport bulk --timeout 20 >/dev/null || fail "cannot unexport bulk on a"
    on a "$xensim" usbdev-attach "$ga" 1-1 --controller 0 --port 1 --timeout 20 >/dev/null \
        || fail "usbdev-attach 1-1 on a again failed"
done
measure local a "$ga"
read -r loc_ctrl loc_bulk loc_mbps <<<"$(mean_of "${runs_local[@]}")"
read -r rem_ctrl rem_bulk rem_mbps <<<"$(mean_of "${runs_remote[@]}")"

# --- raw TCP between b and a, the URB frames' sizes --------------------------------
tcp() { # REQ RESP -> median us
    daemon a "$rtt" server "$a_addr" "$rtt_port" --timeout 30 >"$dir/rtt-server.out" 2>&1 &
    for _ in $(seq 100); do grep -q listening "$dir/rtt-server.out" 2>/dev/null && break; sleep 0.1; done
    daemon b "$rtt" client "$a_addr" "$rtt_port" --seconds "$secs" --req "$1" --resp "$2" |
        sed -n 's/.* p50_us=\([0-9.]*\).*/\1/p'
    wait $!
}
tcp_ctrl=$(tcp 64 90)
tcp_bulk=$(tcp 576 72)
[ -n "$tcp_ctrl" ] && [ -n "$tcp_bulk" ] || fail "raw TCP round trip failed"

report urb_rtt_control_local "$loc_ctrl" us "$tcp_ctrl"
report urb_rtt_control_remote "$rem_ctrl" us "$tcp_ctrl"
report urb_rtt_bulk512_local "$loc_bulk" us "$tcp_bulk"
report urb_rtt_bulk512_remote "$rem_bulk" us "$tcp_bulk"
report bulk_throughput_remote "$rem_mbps" MB/s "$loc_mbps"
plus20() { awk -v t="$1" 'BEGIN { print t + 20 }'; }
minus() { awk -v r="$1" -v l="$2" 'BEGIN { print r - l }'; }
report remote_extra_control_us "$(minus "$rem_ctrl" "$loc_ctrl")" us "$(plus20 "$tcp_ctrl")"
report remote_extra_bulk512_us "$(minus "$rem_bulk" "$loc_bulk")" us "$(plus20 "$tcp_bulk")"
report device_urb_rtt_control "$dev_ctrl" us "$loc_ctrl"
report device_urb_rtt_bulk512 "$dev_bulk" us "$loc_bulk"
