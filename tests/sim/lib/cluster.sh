# Sourced (after common.sh) by the sim scripts that run a `xensim cluster`
# (hosts in network namespaces). cluster_start NAME TAG checks for root and
# makes $dir, removed at exit (KEEP=1 keeps it) after the processes in pids
# and the cluster are stopped. Also: status_is with a time bound, yes_no,
# cl, on, wait_for and wait_listening.
cluster_start() { # name tmp-tag
    if [ "$(id -u)" != 0 ]; then
        echo "$1: needs root (network namespaces for the simulated hosts)"; exit 1
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/$2-XXXXXX")
    trap cluster_cleanup EXIT
    t_start=$(date +%s)
}
cluster_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -f "$dir/cluster.json" ] && timeout 30 "$xensim" cluster down --dir "$dir" >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" == 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}

status_is() { # name expected-status command...
    local name=$1 want=$2; shift 2
    local got=0
    if declare -F "$1" >/dev/null; then "$@" >"$dir/last.out" 2>&1 || got=$?
    else timeout 120 "$@" >"$dir/last.out" 2>&1 || got=$?; fi
    if [ "$got" == "$want" ]; then pass=$((pass + 1)); echo "ok   $name"
    else fail=$((fail + 1)); echo "FAIL $name: exit $got, expected $want"; sed 's/^/     /' "$dir/last.out" | tail -20; fi
}
yes_no() { if "$@"; then echo yes; else echo no; fi; }
cl() { "$xensim" cluster "$1" --dir "$dir" "${@:2}"; }
# on HOST CMD...: CMD as HOST's dom0 (bounded).
on() { local h=$1; shift; timeout 150 "$xensim" cluster exec --dir "$dir" "$h" -- "$@"; }
# wait_for SECONDS CMD...: until CMD succeeds, polling; 1 on timeout.
wait_for() {
    local end=$(($(date +%s%N) / 1000000 + $1 * 1000)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(($(date +%s%N) / 1000000))" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# wait_listening SCRIPT HOST ADDR PORT: until a TCP connect from HOST to
# ADDR:PORT succeeds (netbusd on HOST serves its channel); on timeout says
# so with the tail of HOST's netbusd.log and returns 1.
port_answers() { # host addr port
    on "$1" perl -MIO::Socket::INET -e \
        'exit !IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Timeout => 1)' "$2" "$3"
}
wait_listening() {
    wait_for 30 port_answers "$2" "$3" "$4" && return 0
    echo "$1: netbusd on $2 does not listen on $3:$4"; tail -20 "$dir/$2/netbusd.log"
    return 1
}
