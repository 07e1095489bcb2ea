#!/usr/bin/env bash
# Debian's unmodified xenstore-* tools (libxenstore) against `xensim
# xenstored`: dom0 through XENSTORED_RUNDIR, a guest through XENSTORED_PATH.
set -euo pipefail

XENSIM=${XENSIM_BIN:-build/xensim}
for t in xenstore-read xenstore-write xenstore-ls xenstore-list xenstore-rm \
         xenstore-chmod xenstore-watch; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install xenstore-utils)"; exit 1; }
done
[ -x "$XENSIM" ] || { echo "no $XENSIM (build it first)"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/xsd-interop-XXXXXX")
DAEMON=
cleanup() {
    if [ -n "$DAEMON" ]; then kill "$DAEMON" 2>/dev/null || true; wait "$DAEMON" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# Domain 3 is introduced at start, as the toolstack would with XS_INTRODUCE.
"$XENSIM" xenstored --dir "$TMP/run" --introduce 3 --log-level warn 2>"$TMP/daemon.log" &
DAEMON=$!
for _ in $(seq 50); do [ -S "$TMP/run/dom3/socket" ] && break; sleep 0.1; done

export XENSTORED_RUNDIR="$TMP/run"
unset XENSTORED_PATH
dom3() { XENSTORED_PATH="$TMP/run/dom3/socket" "$@"; }

pass=0 fail=0
check() { # name expected actual
    if [ "$2" == "$3" ]; then pass=$((pass + 1)); echo "ok   $1"
    else fail=$((fail + 1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}
fails() { # name command...: the command must fail
    local name=$1; shift
    if "$@" >/dev/null 2>&1; then fail=$((fail + 1)); echo "FAIL $name: succeeded"
    else pass=$((pass + 1)); echo "ok   $name"; fi
}

xenstore-write /vm/a 1 /vm/b two
check "write then read" "two" "$(xenstore-read /vm/b)"
check "list" "a b" "$(xenstore-list /vm | tr '\n' ' ' | sed 's/ $//')"
check "ls" 'a = "1"
b = "two"' "$(xenstore-ls /vm)"
xenstore-rm /vm/a
check "rm" "b" "$(xenstore-list /vm)"
fails "read removed node" xenstore-read /vm/a

# Long child lists go through XS_DIRECTORY_PART after E2BIG.
for i in $(seq 1 120); do echo "/many/a-rather-long-child-name-to-overflow-one-payload-$i"; echo x; done \
    | xargs -n 2 xenstore-write
check "directory past one payload" "120" "$(xenstore-list /many | wc -l)"

# Permissions: a guest is kept out, dom0 grants, the owner shows.
xenstore-write /secret s
fails "guest read of dom0 node" dom3 xenstore-read /secret
fails "guest write of dom0 node" dom3 xenstore-write /secret x
xenstore-chmod /secret n0 r3
check "guest read after chmod" "s" "$(dom3 xenstore-read /secret)"
fails "guest write with read-only grant" dom3 xenstore-write /secret x
perms_of() { sed -n "s/^$1 = .*(\(.*\))\$/\1/p"; } # from xenstore-ls -p
check "ls -p shows perms" "n0,r3" "$(xenstore-ls -p / | perms_of secret)"
dom3 xenstore-write mine hello
check "guest relative write lands in its home" "hello" "$(xenstore-read /local/domain/3/mine)"
check "guest owns what it creates" "n3" "$(xenstore-ls -p /local/domain/3 | perms_of mine)"
fails "guest may not give its node away" dom3 xenstore-chmod mine n0

# Watches: initial event, then one per change.
xenstore-watch -n 3 /w > "$TMP/watch.out" &
W=$!
for _ in $(seq 50); do [ -s "$TMP/watch.out" ] && break; sleep 0.1; done
xenstore-write /w/x 1
xenstore-write /w/y 2
wait "$W" || true
check "xenstore-watch events" "/w /w/x /w/y" "$(tr '\n' ' ' < "$TMP/watch.out" | sed 's/ $//')"
dom3 xenstore-watch -n 2 dev > "$TMP/watch3.out" &
W=$!
for _ in $(seq 50); do [ -s "$TMP/watch3.out" ] && break; sleep 0.1; done
xenstore-write /local/domain/3/dev/vif 1
wait "$W" || true
check "guest relative watch" "dev dev/vif" "$(tr '\n' ' ' < "$TMP/watch3.out" | sed 's/ $//')"

kill -0 "$DAEMON" 2>/dev/null && check "daemon still running" yes yes || check "daemon still running" yes no
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
