#!/usr/bin/env bash
# stop-swift.sh DIR -- stop the Swift daemons that start-swift.sh DIR started
# (their pids are in DIR/run/*.pid).  SIGTERM, then SIGKILL after 5 s.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
rundir=$1/run
pids=()
for f in "$rundir"/*.pid; do
    [ -e "$f" ] || continue
    p=$(cat "$f")
    case $p in
        '' | *[!0-9]*) ;;
        *) pids+=("$p") ;;
    esac
done
[ ${#pids[@]} -gt 0 ] || exit 0

alive() { # pid: running and not a zombie (an exited daemon may stay a
    # zombie for a while until whoever adopted it reaps it)
    local _pid _comm st=Z
    kill -0 "$1" 2>/dev/null || return 1
    read -r _pid _comm st _ <"/proc/$1/stat" 2>/dev/null || true
    [ "$st" != Z ]
}

# Only signal a pid that still runs one of our launchers (guards against
# pid reuse after the daemons already exited).
ours=()
for p in "${pids[@]}"; do
    if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" |
        grep -Eq '(swift-server\.py|^memcached )'; then
        ours+=("$p")
    fi
done
if [ ${#ours[@]} -gt 0 ]; then
    kill "${ours[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
        left=()
        for p in "${ours[@]}"; do
            if alive "$p"; then left+=("$p"); fi
        done
        [ ${#left[@]} -eq 0 ] && break
        sleep 0.1
    done
    if [ ${#left[@]} -gt 0 ]; then
        kill -9 "${left[@]}" 2>/dev/null || true
    fi
fi
rm -f "$rundir"/*.pid
