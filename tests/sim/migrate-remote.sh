#!/usr/bin/env bash
# sim tier: live migration with the disk on another host, and hot-swap
# (issue 5). Simulated hosts a, b and c (`xensim cluster`: own network
# namespaces joined by veth, own xenstore, own netbusd). a exports two file
# disks; two guests use them as netbus://A/EXPORT: in-process while the
# guest runs on a, over the netbus channel from b and c. Each runs
# `xenfront blk verify` (every byte read back): `re` resumes the Linux way
# (fresh ring, re-issue what had no response), `ke` keeps its queued
# requests on the ring for the destination's backend. Both guests migrate
# at once, a -> b -> a -> c -> a ... (MIGRATE_ROUNDS x 4 migrations each),
# two of those while a link flaps (b's link down while a guest moves to b;
# c's while a guest leaves c with requests in flight to a). Back on a, re's
# disk is hot-swapped from the export to the file itself (remote -> local)
# and back (local -> remote), both under verify, and it migrates once more
# (b and back to a) on the export. A third guest asking for re's export
# writable is refused (a logs the refusal, its LBE is told "in use by
# another guest"). Then:
#   - both verifies ok, no mismatch, and each followed every migration;
#   - dom0 on a checks each file against the model its guest saved (no
#     acknowledged write lost);
#   - ke's requests kept on the ring were served by the new backends;
#   - every source host quiesced ("quiescing", "quiesced"); a's exports
#     handed the sessions over to the guests' new LBEs;
#   - `netbusctl status --json` on each host has suspend records that got
#     to drained and connect records that got to first-request; a has the
#     two swap records with their pauses;
#   - netbusd exits 0 everywhere (a sanitized build: no leak).
# Needs root for the namespaces. MIGRATE_ROUNDS (default 5: 20 migrations
# before the swap, 22 in all) and MIGRATE_SECONDS (the most each verify
# may run, default 600: they are stopped when the migrations are over)
# tune it; KEEP=1 keeps the scratch directory.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
build=${BUILD:-build}
ROUNDS=${MIGRATE_ROUNDS:-5}
for b in xensim netbusd netbusctl xenfront; do
    [ -x "$build/$b" ] || { echo "migrate-remote: $build/$b is not built"; exit 1; }
done
xensim=$(realpath "$build/xensim") netbusd=$(realpath "$build/netbusd")
netbusctl=$(realpath "$build/netbusctl") xenfront=$(realpath "$build/xenfront")
. "$(dirname "$0")/lib/cluster.sh"
cluster_start migrate-remote nbmr

port=7797
printf '# cluster key\n* %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/keys"
chmod 600 "$dir/keys"
declare -A nb addr
start_netbusd() { # host
    local h=$1
    # exec'd, not through a function: $! is netbusd itself. Its address
    # is an alias: a URL naming it is served in-process.
    "$xensim" cluster exec --dir "$dir" "$h" -- "$netbusd" --xensim-dir "$dir/$h" \
        --name "$h" --aliases "${addr[$h]}" --listen "${addr[$h]}:$port" \
        --keys "$dir/keys" --log-level info >>"$dir/$h/netbusd.log" 2>&1 &
    nb[$h]=$!
    pids+=($!)
    wait_listening migrate-remote "$h" "${addr[$h]}" "$port"
}

cl up --hosts a,b,c --timeout 60 >"$dir/up.out"
for h in a b c; do addr[$h]=$(cl addr "$h"); done
for h in a b c; do start_netbusd "$h"; done

declare -A url
for g in re ke; do
    truncate -s 64M "$dir/a/$g.img"
    status_is "a: export $g's disk" 0 on a "$netbusctl" export "$g-disk" "$dir/a/$g.img"
    url[$g]="netbus://${addr[a]}:$port/$g-disk"
done

# --- two guests on a, their disks from a's exports (in-process) -------------
declare -A host domid
for g in re ke; do
    on a "$xensim" create --name "$g" --memory 128 >/dev/null
    status_is "a: attach ${url[$g]} to $g" 0 on a "$xensim" block-attach "$g" "${url[$g]}" xvda --timeout 30
    host[$g]=a
done
domid_of() { on "$1" "$xensim" list | awk -v n="$2" '$2==n {print $1}'; }
uuid_of() { on "$1" "$xensim" list | awk -v n="$2" '$2==n {print $6}'; }
re_uuid=$(uuid_of a re) ke_uuid=$(uuid_of a ke)
check "a serves re's disk in-process (no connection)" "yes" \
    "$(yes_no grep -q "session [0-9]* opened by a ($re_uuid)" "$dir/a/netbusd.log")"

# Each verify runs until everything below is over (its stop file), at most
# SECS; it must still be running then (checked), or it ended early.
SECS=${MIGRATE_SECONDS:-600}
declare -A vpid
verify() { # guest resume-mode extra...
    local g=$1 mode=$2; shift 2
    "$xensim" cluster exec --dir "$dir" a -- "$xensim" run --domid "$(domid_of a "$g")" -- \
        "$xenfront" blk verify --vdev xvda --seconds "$SECS" --stop-file "$dir/verify.stop" \
        --qd 16 --initial zero --resume "$mode" --timeout 60 --model-out "$dir/$g.model" "$@" \
        >"$dir/$g.out" 2>"$dir/$g.err" &
    vpid[$g]=$!
    pids+=($!)
}
verify re reissue
verify ke keep --queues 2
t_verify=$(date +%s)
fe_connected() { # host guest
    [ "$(on "$1" xenstore-read "/local/domain/$(domid_of "$1" "$2")/device/vbd/51712/state" 2>/dev/null)" == 4 ]
}
for g in re ke; do
    wait_for 30 fe_connected a "$g" || echo "     (note: $g's frontend did not reach Connected in 30 s)"
done
sleep 1

# --- migrations, both guests at once ------------------------------------------
declare -A moved=([re]=0 [ke]=0) migs=([re]=0 [ke]=0)
# migrate_one GUEST TO: one migration; its result line goes to $dir/mig-GUEST.
migrate_one() {
    local g=$1 from=${host[$1]} to=$2 t rc=0
    t=$(timeout 120 "$xensim" migrate --dir "$dir/$from" "$g" --to "$dir/$to" --timeout 40 2>&1 >/dev/null) || rc=$?
    echo "$rc $from $to ${t#xensim migrate: }" >"$dir/mig-$g"
}
# migrate_both TO [FAULT...]: migrates re and ke to TO at the same time;
# FAULT (a function and its arguments) runs meanwhile.
migrate_both() {
    local to=$1 g rc from to_ t p1 p2; shift
    migrate_one re "$to" & p1=$!
    migrate_one ke "$to" & p2=$!
    [ $# -eq 0 ] || "$@"
    wait "$p1" "$p2" || true
    for g in re ke; do
        read -r rc from to_ t <"$dir/mig-$g"
        migs[$g]=$((migs[$g] + 1))
        if [ "$rc" == 0 ]; then
            host[$g]=$to
            # guest, source, destination, domid there, domid here
            sed -n "s/^domain \([0-9]*\) -> domain \([0-9]*\) of .*/$g $from $to_ \1 \2/p" <<<"$t" >>"$dir/migrations"
            pass=$((pass + 1)); echo "ok   migrate $g $from -> $to_: ${t#*: }"
            case $t in *" 1 process(es)"*) moved[$g]=$((moved[$g] + 1)) ;; esac
        else
            fail=$((fail + 1)); echo "FAIL migrate $g $from -> $to_ (exit $rc): $t"
        fi
    done
}
# migrate_both_flapping HOST TO: HOST's link goes down, the guests start
# moving to TO, the link comes back 1.5 s later. The migration cannot end
# before (checked): the source must drain requests in flight to a, or the
# destination must reach a for the disk.
link_up_after() { sleep "$2"; cl link "$1" up >"$dir/up-$1.out" 2>&1 && echo ok >>"$dir/up-$1.out"; }
migrate_both_flapping() {
    local h=$1 to=$2 g ms
    status_is "$h's link down" 0 cl link "$h" down
    migrate_both "$to" link_up_after "$h" 1.5
    check "$h's link up again" "ok" "$(tail -1 "$dir/up-$h.out")"
    for g in re ke; do
        ms=$(sed -n 's/^0 [a-c] [a-c] .*: \([0-9]*\)\.[0-9] ms (suspend.*/\1/p' "$dir/mig-$g")
        check "migrating $g while $h's link was down took the outage" "yes" \
            "$(yes_no [ "${ms:-0}" -ge 1000 ])"
    done
}

for r in $(seq "$ROUNDS"); do
    # round 2: b's link is down while the guests move to b (their new
    # LBEs connect to a through it); round 3: c's link goes down while
    # they leave c (the old LBEs have requests in flight to a).
    if [ "$r" == 2 ]; then migrate_both_flapping b b; else migrate_both b; fi
    migrate_both a
    migrate_both c
    if [ "$r" == 3 ]; then migrate_both_flapping c a; else migrate_both a; fi
done

# --- hot-swap on a: export -> the file itself -> export -------------------------
swap() { # target
    on a "$netbusctl" swap re xvda "$1" --timeout 60
}
status_is "a: swap re's disk to the file (remote -> local)" 0 swap "$dir/a/re.img"
sed 's/^/     /' "$dir/last.out"
check "the swap reported the device's pause" "yes" "$(yes_no grep -q 'device paused [0-9.]* ms' "$dir/last.out")"
check "re's backend now uses the file" "$dir/a/re.img" \
    "$(on a xenstore-read "/local/domain/0/backend/vbd/$(domid_of a re)/51712/params" 2>/dev/null)"
sleep 1
status_is "a: swap re's disk back to the export (local -> remote)" 0 swap "${url[re]}"
sed 's/^/     /' "$dir/last.out"
check "re's backend uses the export again" "${url[re]}" \
    "$(on a xenstore-read "/local/domain/0/backend/vbd/$(domid_of a re)/51712/params" 2>/dev/null)"
status_is "swapping to a file that does not exist is refused" 1 swap "$dir/a/other.img"
truncate -s 32M "$dir/a/other.img"
status_is "swapping to a disk of another size is refused" 1 swap "$dir/a/other.img"
check "it said why" "yes" "$(yes_no grep -qi 'size\|[0-9] bytes' "$dir/last.out")"
sleep 0.5
# after the swap back, the guest can leave a again on its export
migrate_both b
migrate_both a

# --- a different guest asks for re's export --------------------------------------
gi=$(on c "$xensim" create --name intruder --memory 64)
status_is "c: another guest cannot attach re's export writable" 1 \
    on c "$xensim" block-attach intruder "${url[re]}" xvda --timeout 10
check "a refused it: re holds the export" "yes" \
    "$(yes_no grep -q "refused a session for guest $(uuid_of c intruder): guest $re_uuid holds" "$dir/a/netbusd.log")"
check "c's netbusd was told the export is in use by another guest" "yes" \
    "$(yes_no grep -q "export 're-disk' is in use by another guest" "$dir/c/netbusd.log")"
on c "$xensim" destroy "$gi" >/dev/null 2>&1 || true

# --- the verifies ------------------------------------------------------------------
echo "--   all that took $(($(date +%s) - t_verify)) s of verify (at most $SECS s)"
for g in re ke; do
    check "verify $g still ran after the last migration" "yes" "$(yes_no kill -0 "${vpid[$g]}")"
done
touch "$dir/verify.stop"
t_stop=$(date +%s)
for g in re ke; do
    verify_done "verify $g across the migrations" "${vpid[$g]}" "$dir/$g.out" "$dir/$g.err"
done
check "the verifies ended at their stop file (read-back included, under 60 s)" "yes" \
    "$(yes_no [ $(($(date +%s) - t_stop)) -lt 60 ])"
n() { grep -o "$1: [0-9]*" "$dir/$2.err" | grep -o '[0-9]*$' || echo 0; }
check "re migrated at least 20 times under verify" "yes" "$(yes_no [ "${moved[re]}" -ge 20 ])"
check "re followed every migration" "${migs[re]} migration(s), 0 cancelled" \
    "$(grep -o '[0-9]* migration(s), [0-9]* cancelled' "$dir/re.err")"
check "ke followed every migration" "${migs[ke]} migration(s), 0 cancelled" \
    "$(grep -o '[0-9]* migration(s), [0-9]* cancelled' "$dir/ke.err")"
check "reissue: requests were re-issued on fresh rings" "yes" \
    "$(yes_no [ "$(n 'requests re-issued after resume' re)" -gt 0 ])"
check "keep: requests stayed on the ring across suspend" "yes" \
    "$(yes_no [ "$(n 'requests kept across suspend' ke)" -gt 0 ])"
check "keep: none re-issued" "0" "$(n 'requests re-issued after resume' ke)"
check "the new backends served requests already on the ring" "yes" \
    "$(yes_no grep -q 'request(s) already on the ring' "$dir"/[abc]/netbusd.log)"
for g in re ke; do
    status_is "a: dom0 sees what $g wrote" 0 on a "$xenfront" blk check-file \
        --model "$dir/$g.model" --file "$dir/a/$g.img"
done

# --- what netbusd said and recorded --------------------------------------------------
for h in a b c; do
    check "$h quiesced the guests' disks when they left" "yes yes" \
        "$(yes_no grep -q 'suspended: quiescing' "$dir/$h/netbusd.log") $(yes_no grep -q 'quiesced: nothing in flight' "$dir/$h/netbusd.log")"
done
for g in re ke; do
    check "a handed $g's sessions over" "yes" \
        "$(yes_no grep -q "of guest $(eval echo "\$${g}_uuid") (from [a-z]*) is handed over" "$dir/a/netbusd.log")"
done
# timeline: every migration has its suspend record on the source (the old
# domid), which got to drained, and its connect record on the destination
# (the new domid), which got to first-request; a has the two swap records,
# each with its pause.
for h in a b c; do on "$h" "$netbusctl" status --json >"$dir/status-$h.json"; done
timeline() { # host: what is missing there, one line each; then the counts
    perl -MJSON::PP -e '
        my ($h, $file, $migs, %uuid) = @ARGV;
        open my $f, "<", $file or die "$file: $!"; local $/; my $j = decode_json(<$f>);
        my @r = grep { $uuid{$_->{domain}} } @{$j->{timeline}};
        my $rec = sub { my ($kind, $g, $id) = @_;
            (grep { $_->{kind} eq $kind && $uuid{$_->{domain}} eq $g && $_->{domid} == $id } @r)[-1] };
        my %n = (suspend => 0, connect => 0);
        open my $m, "<", $migs or die "$migs: $!"; local $/ = "\n";
        while (<$m>) {
            my ($g, $from, $to, $old, $new) = split;
            if ($from eq $h) {
                my $r = $rec->("suspend", $g, $old);
                if (!$r) { print "no suspend record for $g leaving $from -> $to (domid $old)\n" }
                elsif (!$r->{events}{drained}) { print "suspend record #$r->{seq} of $g (domid $old) without drained\n" }
                else { $n{suspend}++ }
            }
            if ($to eq $h) {
                my $r = $rec->("connect", $g, $new);
                if (!$r) { print "no connect record for $g arriving $from -> $to (domid $new)\n" }
                elsif (!$r->{events}{"first-request"}) { print "connect record #$r->{seq} of $g (domid $new) without first-request: result \"$r->{result}\", events ", join(",", sort keys %{$r->{events}}), "\n" }
                else { $n{connect}++ }
            }
        }
        my @sw = grep { $_->{kind} eq "swap" } @r;
        print "counts suspend=$n{suspend} connect=$n{connect} swap=", scalar(@sw), " swap-pause=", scalar(grep { defined $_->{pause_ms} } @sw), "\n";
    ' "$1" "$dir/status-$1.json" "$dir/migrations" "$re_uuid" re "$ke_uuid" ke
}
for h in a b c; do
    tl=$(timeline "$h")
    grep -v '^counts' <<<"$tl" | sed "s/^/     $h: /" || true
    out=$(awk -v h="$h" '$2==h' "$dir/migrations" | wc -l) in=$(awk -v h="$h" '$3==h' "$dir/migrations" | wc -l)
    check "$h: a drained suspend record for each of the $out migrations from $h" "$out" \
        "$(sed -n 's/^counts suspend=\([0-9]*\).*/\1/p' <<<"$tl")"
    check "$h: a connect record with a first request for each of the $in migrations to $h" "$in" \
        "$(sed -n 's/^counts .*connect=\([0-9]*\).*/\1/p' <<<"$tl")"
    [ "$h" != a ] || check "a: the two swaps, each with its pause" "swap=2 swap-pause=2" \
        "$(grep -o 'swap=.*' <<<"$tl")"
done
on a "$netbusctl" status --last 2 | sed 's/^/     /'

# --- netbusd stops cleanly everywhere (a sanitized build reports leaks now) ----------
for g in re ke; do
    on "${host[$g]}" "$xensim" destroy "$g" >/dev/null 2>&1 || true
done
for h in a b c; do
    netbusd_stops "netbusd on $h" "${nb[$h]}" 30
done
for h in a b c; do
    no_sanitizer_reports "on $h" "$dir/$h/netbusd.log" "$dir/$h/host.log"
done
no_sanitizer_reports "in the guests" "$dir"/*.err
if [ "$fail" -ne 0 ]; then
    for h in a b c; do echo "--- netbusd on $h (last 25 lines)"; tail -25 "$dir/$h/netbusd.log"; done
fi
echo "migrate-remote: $(($(date +%s) - t_start)) s; re migrated ${migs[re]} times, ke ${migs[ke]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
