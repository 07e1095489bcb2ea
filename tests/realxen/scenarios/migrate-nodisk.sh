# migrate-nodisk: the control experiment for scenario migrate. The same PVH
# guest and the same live migrations to localhost, with no disk and no
# netbusd: only a memory check runs in the guest. What fails here fails
# without netbus. Not in the default run.
. "$(dirname "${BASH_SOURCE[0]}")/migrate.sh"

check_pvh_migrate_nodisk() {
    local cfg d0 d1 t0 i c0 c
    c0=$(dom0_crashes | wc -l)
    cfg=$(guest_cfg rx-pvh pvh)
    xl_logged create "$cfg" || { why "xl create (PVH, no disk) failed"; return 1; }
    guest_up rx-pvh 120 || return 1
    gx rx-pvh 30 'rx memcheck-start' || { why "memcheck did not start"; return 1; }
    for i in $(seq 1 "$RX_MIGRATIONS"); do
        d0=$(domid_of rx-pvh) || { why "no domain rx-pvh before migration $i"; return 1; }
        mark "migration $i of $RX_MIGRATIONS (domain $d0, no disk)"
        t0=$(date +%s)
        xl_logged migrate -s "" rx-pvh "xl migrate-receive" || { dom0_crashes | sed 's/^/  dom0: /'; why "xl migrate $i failed"; return 1; }
        d1=$(domid_of rx-pvh) || { dom0_crashes | sed 's/^/  dom0: /'; why "no domain rx-pvh after migration $i"; return 1; }
        note "migration $i: $(( $(date +%s) - t0 )) s, domain $d0 -> $d1"
        c=$(dom0_crashes | wc -l)
        [ "$c" = "$c0" ] || { dom0_crashes | sed 's/^/  dom0: /'; why "dom0 programs crashed during migration $i"; return 1; }
        gx rx-pvh 30 'rx memcheck-count' >/dev/null || { guest_console rx-pvh 20; why "guest does not answer after migration $i"; return 1; }
        gx rx-pvh 30 'rx memcheck-errors' || { why "guest memory check failed across migration $i"; return 1; }
    done
    gx rx-pvh 60 'rx memcheck-stop' || { why "guest memory check failed"; return 1; }
    xl_logged destroy rx-pvh || { why "xl destroy failed"; return 1; }
}

CHECKS=(
    "pvh-live-migrate-nodisk:$(( 120 + 60 * RX_MIGRATIONS )):check_pvh_migrate_nodisk"
)
