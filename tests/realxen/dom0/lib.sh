# Helpers for realxen scenarios, sourced in dom0 (bash).
# Output lines the host harness parses:
#   MARK <text>                        progress
#   RESULT PASS|FAIL <check> (<secs> s[, reason])   one per check
RX=/etc/netbus-rx
RUN=/run/rx
IMG=/var/lib/netbus-rx
mkdir -p "$RUN"
# settings from the host (run-scenario.sh writes them)
RX_MIGRATIONS=3
RX_NETBUSD_LOG_LEVEL=debug
RX_GUEST_EXTRA=
[ -f "$RX/env" ] && . "$RX/env"
. "$RX/guest-io.sh"

now() { cut -d' ' -f1 /proc/uptime; }
mark() { echo "MARK $*"; }
note() { echo "  $*"; }
# why REASON: the reason a check fails, shown on its RESULT line
why() { echo "$*" >"$RUN/why"; echo "  FAIL: $*"; return 1; }
# skip REASON: the check cannot run here; said on its RESULT SKIP line
skip() { echo "$*" >"$RUN/skip"; echo "  SKIP: $*"; exit 0; }

# wait_for SECS CMD...: poll CMD every 0.3 s until it succeeds
wait_for() {
    local secs=$1; shift
    local end=$(( $(date +%s) + secs ))
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.3
    done
}
xs_is() { [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ]; }

# guest_cfg NAME TYPE [DISKSPEC...]: write $RUN/NAME.cfg for a busybox guest
guest_cfg() {
    local name=$1 type=$2; shift 2
    local f="$RUN/$name.cfg" d sep=""
    {
        echo "name = \"$name\""
        echo "type = \"$type\""
        echo "kernel = \"$IMG/vmlinuz\""
        echo "ramdisk = \"$IMG/guest.cpio\""
        echo "extra = \"console=hvc0 quiet${RX_GUEST_EXTRA:+ $RX_GUEST_EXTRA}\""
        echo "memory = 256"
        echo "vcpus = 1"
        echo "on_crash = \"preserve\""
        [ "$type" = pvh ] && echo "tsc_mode = \"native\""
        printf 'disk = ['
        for d in "$@"; do printf '%s '\''%s'\''' "$sep" "$d"; sep=","; done
        printf ' ]\n'
    } >"$f"
    echo "$f"
}

domid_of() { xl domid "$1" 2>/dev/null; }

# guest_up NAME SECS: wait until the guest's agent has written data/ready
guest_up() {
    local name=$1 secs=${2:-90} d
    d=$(domid_of "$name") || { why "guest $name does not exist"; return 1; }
    wait_for "$secs" xs_is "/local/domain/$d/data/ready" 1 || {
        guest_console "$name"; why "guest $name not up after $secs s"; return 1; }
}

# guest_console NAME [LINES]: show the tail of the guest's console log (the
# newest one: a migrated guest's console goes to guest-NAME--incoming.log)
guest_console() {
    local f
    f=$(ls -t /var/log/xen/console/guest-"$1".log /var/log/xen/console/guest-"$1"--incoming.log 2>/dev/null | head -n 1)
    echo "  --- console of $1 (last ${2:-40} lines) ---"
    [ -f "$f" ] && tail -n "${2:-40}" "$f" | sed 's/^/  | /'
    echo "  ---"
}

# gx NAME SECS CMD: run CMD (sh) in the guest; its output goes to stdout
# and to $GX_OUT; returns CMD's exit status (124 on timeout)
GX_OUT=
gx() {
    local name=$1 secs=$2 cmd d seq p
    cmd=$(printf '%s' "$3" | tr '\n' ' ')   # xenstore-read would escape newlines
    d=$(domid_of "$name") || { echo "  gx: no guest $name"; return 125; }
    p=/local/domain/$d/data
    seq=$(( $(cat "$RUN/seq" 2>/dev/null || echo 0) + 1 ))
    echo "$seq" >"$RUN/seq"
    xenstore-write "$p/cmd" "$cmd" && xenstore-write "$p/seq" "$seq" || return 125
    if ! wait_for "$secs" xs_is "$p/done" "$seq"; then
        echo "  gx $name: '$cmd' did not finish in $secs s"
        guest_console "$name" 20
        return 124
    fi
    # xenstore-read escapes newlines as \n; retry a failed read
    local out rc i
    for i in 1 2 3 4 5; do
        out=$(xenstore-read "$p/out" 2>/dev/null) && rc=$(xenstore-read "$p/rc" 2>/dev/null) && break
        sleep 0.3
    done
    GX_OUT=$(printf '%s' "$out" | sed 's/\\n/\n/g')
    [ -n "$GX_OUT" ] && printf '%s\n' "$GX_OUT" | sed "s/^/  [$name] /"
    return "${rc:-125}"
}

# dom0_crashes: dom0's kernel messages about user programs that crashed
# (segfaults, traps); under software emulation xl and the xenstore tools
# have been seen dying after live migrations
dom0_crashes() { dmesg | grep -aE 'segfault at|traps: |general protection|invalid opcode' || true; }

# xl_logged ARGS...: run xl, its output indented into the log as it comes
# (also kept in $RUN/xl.out)
xl_logged() {
    local rc
    xl "$@" 2>&1 | tee "$RUN/xl.out" | sed -u 's/^/  xl: /'
    rc=${PIPESTATUS[0]}
    return $rc
}

# dump_state: what helps to debug a failed check
dump_state() {
    echo "  --- dom0 state ---"
    xl list 2>&1 | sed 's/^/  | /'
    free -m | sed 's/^/  | /'
    df -m / | sed 's/^/  | /'
    dmesg | tail -n 15 | sed 's/^/  | dmesg: /'
    local f pid t
    for pid in $(pidof netbusd); do
        for t in /proc/$pid/task/*; do
            echo "  | netbusd $pid task ${t##*/}: wchan $(cat "$t/wchan" 2>/dev/null)"
        done
        [ -f /var/log/netbusd.log ] && tail -n 10 /var/log/netbusd.log | sed 's/^/  | netbusd: /'
    done
    for f in /var/log/xen/console/guest-*.log; do
        [ -f "$f" ] || continue
        echo "  | $f:"; tail -n 8 "$f" | sed 's/^/  |   /'
    done
    for f in /var/log/xen/xl-*.log; do
        [ -f "$f" ] || continue
        echo "  | $f:"; tail -n 10 "$f" | sed 's/^/  |   /'
    done
    echo "  ---"
}

destroy_all_guests() {
    local n
    for n in $(xl list 2>/dev/null | awk 'NR>2 {print $1}'); do
        xl destroy "$n" >/dev/null 2>&1 || true
    done
}
