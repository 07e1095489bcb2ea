# Helpers for scenarios whose guest keeps doing I/O through netbusd across
# save/restore and live migration (disk, migrate, usb); lib.sh sources this.
NBLOG=/var/log/netbusd.log

netbusd_start() {
    setsid netbusd --xenif xen --pidfile /run/netbusd.pid --log-level "$RX_NETBUSD_LOG_LEVEL" \
        </dev/null >>"$NBLOG" 2>&1 &
    wait_for 20 test -s /run/netbusd.pid || { tail -20 "$NBLOG"; why "netbusd wrote no pid file"; return 1; }
    sleep 1
    kill -0 "$(cat /run/netbusd.pid)" 2>/dev/null || { tail -20 "$NBLOG"; why "netbusd exited"; return 1; }
}
netbusd_log() { echo "  --- netbusd log (last ${1:-20} lines) ---"; tail -n "${1:-20}" "$NBLOG" | sed 's/^/  | /'; }

# same_sum WHAT GOT WANT
same_sum() {
    [ "$2" = "$3" ] && { note "$1: digest ok"; return 0; }
    why "$1: digest $2, want $3"
}

# mig_log FROM [LINES]: netbusd's log lines from line FROM on (one migration's worth)
mig_log() {
    echo "  --- netbusd log during the migration ---"
    tail -n +"$1" "$NBLOG" | tail -n "${2:-200}" | sed 's/^/  | /'
}

# mig_diag FROM NAME KLOG_PATTERN: what a failed migration of guest NAME
# leaves to read: netbusd's log since line FROM, dom0's crashed programs,
# the guest's kernel messages matching KLOG_PATTERN, its console, xl's logs
mig_diag() {
    local f
    mig_log "$1" 300
    echo "  --- dom0 programs that crashed ---"
    dom0_crashes | tail -n 10 | sed 's/^/  | /'
    echo "  --- guest kernel messages ($3) ---"
    if gx "$2" 30 "rx klog \"$3\" | tail -n 60" >/dev/null; then
        printf '%s\n' "$GX_OUT" | sed 's/^/  | /'
    else
        echo "  | (the guest did not answer)"
    fi
    guest_console "$2" 30
    for f in /var/log/xen/xl-"$2"*.log; do
        [ -f "$f" ] || continue
        echo "  --- $f ---"; tail -n 30 "$f" | sed 's/^/  | /'
    done
}

# wait_writer NAME ABOVE SECS: until the guest's writer (rx writer-start)
# has done more than ABOVE passes; prints the count
wait_writer() {
    local end=$(( $(date +%s) + $3 )) n
    while :; do
        gx "$1" 30 'rx writer-count' >/dev/null && n=$(printf '%s' "$GX_OUT" | tail -1) || n=
        [ -n "$n" ] && [ "$n" -gt "$2" ] && { echo "$n"; return 0; }
        [ "$(date +%s)" -ge "$end" ] && { echo "${n:-?}"; return 1; }
        sleep 1
    done
}

# migrate_under_writer NAME I N BE_DIR CONNECTED DIAG: live migration I of
# N of guest NAME to localhost while its writer runs. Then: a new domain,
# no program in dom0 crashed, `CONNECTED NEWDOMID` holds within 60 s, the
# writer makes progress, the old domain has nothing left under BE_DIR (e.g.
# /local/domain/0/backend/vbd), and no pass of the writer (or of rx
# memcheck, if running) failed. On a failure `DIAG FROM` shows what there is
# to see (FROM: netbusd's first log line of this migration). WRITER_PASSES:
# the writer's passes before (set by the caller) and after.
WRITER_PASSES=0
migrate_under_writer() {
    local name=$1 i=$2 n=$3 bedir=$4 connected=$5 diag=$6 d0 d1 t0 from c0
    c0=$(dom0_crashes | wc -l)
    d0=$(domid_of "$name") || { why "no domain $name before migration $i"; return 1; }
    from=$(( $(wc -l <"$NBLOG") + 1 ))
    mark "migration $i of $n (domain $d0, writer passes $WRITER_PASSES)"
    t0=$(date +%s)
    xl_logged migrate -s "" "$name" "xl migrate-receive" || { $diag "$from"; why "xl migrate $i failed"; return 1; }
    d1=$(domid_of "$name") || { $diag "$from"; why "no domain $name after migration $i"; return 1; }
    note "migration $i: $(( $(date +%s) - t0 )) s, domain $d0 -> $d1"
    [ "$d0" != "$d1" ] || { why "same domid after migration $i"; return 1; }
    [ "$(dom0_crashes | wc -l)" = "$c0" ] \
        || { $diag "$from"; why "dom0 programs crashed during migration $i: $(dom0_crashes | tail -n 1 | cut -c1-120)"; return 1; }
    wait_for 60 "$connected" "$d1" || { $diag "$from"; why "backend not Connected after migration $i"; return 1; }
    WRITER_PASSES=$(wait_writer "$name" "$(( ${WRITER_PASSES:-0} + 1 ))" 90) \
        || { $diag "$from"; why "writer stuck after migration $i (passes $WRITER_PASSES)"; return 1; }
    note "writer passes after migration $i: $WRITER_PASSES"
    wait_for 30 bash -c "[ -z \"\$(xenstore-list $bedir/$d0 2>/dev/null)\" ]" \
        || { $diag "$from"; why "backend of the old domain $d0 left after migration $i"; return 1; }
    gx "$name" 30 'rx memcheck-errors' || { $diag "$from"; why "guest memory check failed across migration $i"; return 1; }
    gx "$name" 30 'rx writer-errors' || { $diag "$from"; why "writer saw errors across migration $i"; return 1; }
    mig_log "$from" 60
}
