# memcheck: the control experiment for scenario migrate without migrations.
# A guest rewrites and checks a ~4 MiB tmpfs file in a loop (rx memcheck-*)
# for MEMCHECK_SECS seconds: a PVH guest with no disk, then a PVH guest with
# a netbus:// disk and the disk writer running. A failed pass (a line of
# another pass, a wrong count, a crashed tool) means the guest's memory or
# CPU state went wrong; programs that crashed in dom0 meanwhile fail it too.
# With XSAVE in QEMU's CPU the writer check failed 2 runs of 2 (8 of 35
# passes), dom0's bash segfaulting as the writer started; without, it passes
# (see run-scenario.sh). Not in the default run.
. "$(dirname "${BASH_SOURCE[0]}")/migrate.sh"
MEMCHECK_SECS=${MEMCHECK_SECS:-60}

memcheck_for() {  # memcheck_for NAME SECS
    local n c0
    c0=$(dom0_crashes | wc -l)
    gx "$1" 30 'rx memcheck-start' || { why "memcheck did not start"; return 1; }
    sleep "$2"
    gx "$1" 30 'rx memcheck-count' >/dev/null; n=$(printf '%s' "$GX_OUT" | tail -1)
    note "memcheck passes in $2 s: $n"
    gx "$1" 60 'rx memcheck-stop' || { guest_console "$1" 20; why "guest memory check failed (no migration)"; return 1; }
    [ "$(dom0_crashes | wc -l)" = "$c0" ] || { dom0_crashes | sed 's/^/  dom0: /'; why "dom0 programs crashed"; return 1; }
}

check_pvh_memcheck_nodisk() {
    xl_logged create "$(guest_cfg rx-pvh pvh)" || { why "xl create failed"; return 1; }
    guest_up rx-pvh 120 || return 1
    note "dom0 cpu flags: $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)"
    gx rx-pvh 30 'grep -m1 "^flags" /proc/cpuinfo; cat /proc/cmdline' >/dev/null && note "guest: $GX_OUT"
    memcheck_for rx-pvh "$MEMCHECK_SECS" || return 1
    xl_logged destroy rx-pvh
}

check_pvh_memcheck_writer() {
    mkdir -p "$D"
    truncate -s 64M "$D/disk4.img"
    netbusctl export rx-mc "$D/disk4.img" >/dev/null 2>&1 || { why "netbusctl export failed"; return 1; }
    xl_logged create "$(guest_cfg rx-pvh pvh "$DISKSPEC, vdev=xvda, target=netbus://$(hostname)/rx-mc")" || { why "xl create failed"; return 1; }
    guest_up rx-pvh 120 || return 1
    gx rx-pvh 60 'rx wait-dev /dev/xvda 40 && rx pattern 32 && rx writer-start /dev/xvda 0' || { why "writer did not start"; return 1; }
    memcheck_for rx-pvh "$MEMCHECK_SECS" || return 1
    gx rx-pvh 120 'rx writer-stop' || { why "writer reported errors"; return 1; }
    xl_logged destroy rx-pvh
}

CHECKS=(
    "pvh-memcheck-nodisk:$(( 150 + MEMCHECK_SECS )):check_pvh_memcheck_nodisk"
    netbusd-running:60:check_netbusd_running
    "pvh-memcheck-writer:$(( 200 + MEMCHECK_SECS )):check_pvh_memcheck_writer"
)
