#!/usr/bin/env bash
# start-swift.sh DIR PORT
#
# Sets up and starts a single-node, single-replica OpenStack Swift with the
# s3api + tempauth middleware, entirely inside DIR, listening on 127.0.0.1
# only: the proxy on PORT; memcached (tempauth needs it) and the
# account/container/object servers on free loopback ports chosen here.
# Unlike s3rver it verifies SigV4 signatures (headers and presigned URLs).
#
# Once every daemon answers, prints (stdout, one per line):
#   S3_ENDPOINT=http://127.0.0.1:PORT
#   S3_ACCESS_KEY=test:tester
#   S3_SECRET_KEY=testing
#   S3_REGION=us-east-1
#   PIDS=<memcached> <account> <container> <object> <proxy>
# and leaves the daemons running; stop them with `kill $PIDS` or
# stop-swift.sh DIR.  On failure it stops whatever it started, prints why
# (with the end of the daemon's log) on stderr and exits non-zero.
#
# Layout of DIR: etc/ (swift.conf, *-server.conf, rings), srv/d1 (the one
# storage device, a plain directory), log/*.log, run/*.pid, bin/ (launcher).
# Needs the Debian packages listed in README.md; works as root or not.
set -euo pipefail

usage() {
    echo "usage: $0 DIR PORT" >&2
    exit 2
}
die() {
    echo "start-swift: $*" >&2
    exit 1
}

[ $# -eq 2 ] || usage
port=$2
case $port in
    '' | *[!0-9]*) die "PORT must be a number, got '$port'" ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "PORT out of range: $port"
fi

PY=/usr/bin/python3
[ -x "$PY" ] || die "$PY not found (apt-get install python3)"
command -v memcached >/dev/null || die "memcached not found (apt-get install memcached)"

mkdir -p "$1"
dir=$(cd "$1" && pwd -P)
etc=$dir/etc
srv=$dir/srv
logdir=$dir/log
rundir=$dir/run
bindir=$dir/bin

# Refuse to start over daemons of a previous run that are still alive (a
# pid counts only while it still runs one of our daemons: pids get reused).
for f in "$rundir"/*.pid; do
    [ -e "$f" ] || continue
    p=$(cat "$f")
    case $p in '' | *[!0-9]*) continue ;; esac
    if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" |
        grep -Eq '(swift-server\.py|^memcached )'; then
        die "a daemon from a previous run is still alive (pid $p, $f); run stop-swift.sh $dir first"
    fi
done

mkdir -p "$etc" "$srv/d1" "$logdir" "$rundir" "$bindir"
rm -f "$rundir"/*.pid "$etc"/*.builder "$etc"/*.ring.gz
rm -rf "$etc/backups"

# Is PORT free; four other free loopback ports for memcached and the
# account/container/object servers.
ports=$("$PY" - "$port" <<'EOF'
import socket, sys
want = int(sys.argv[1])
s = socket.socket()
# As Swift binds: SO_REUSEADDR, so TIME_WAIT leftovers of a previous run
# on this port do not count, only a listener does.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", want))
    s.listen(1)
except OSError as e:
    sys.exit("start-swift: port %d on 127.0.0.1 is not free: %s" % (want, e))
s.close()
socks, out = [], []
while len(out) < 4:
    t = socket.socket()
    t.bind(("127.0.0.1", 0))
    socks.append(t)
    p = t.getsockname()[1]
    if p != want:
        out.append(p)
print(" ".join(map(str, out)))
EOF
)
read -r memcache_port account_port container_port object_port <<<"$ports"

user=$(id -un)

# --- configuration -------------------------------------------------------
cat >"$etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = seashore-test
swift_hash_path_suffix = seashore-test

[storage-policy:0]
name = Policy-0
default = yes
EOF

common_default() { # $1 = bind port
    cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $1
bind_timeout = 3
workers = 0
user = $user
swift_dir = $etc
devices = $srv
mount_check = false
disable_fallocate = true
log_level = INFO
EOF
}

for kind in account container object; do
    var=${kind}_port
    {
        common_default "${!var}"
        cat <<EOF

[pipeline:main]
pipeline = healthcheck $kind-server

[app:$kind-server]
use = egg:swift#$kind

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
    } >"$etc/$kind-server.conf"
done

{
    common_default "$port"
    cat <<EOF

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$memcache_port
EOF
    cat <<'EOF'

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl s3api tempauth copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:tempurl]
use = egg:swift#tempurl
allowed_digests = sha256 sha512

[filter:copy]
use = egg:swift#copy

[filter:container-quotas]
use = egg:swift#container_quotas

[filter:account-quotas]
use = egg:swift#account_quotas

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes

[filter:symlink]
use = egg:swift#symlink
EOF
} >"$etc/proxy-server.conf"

# Launcher (what swift-*-server does, plus):
# - Swift reads swift.conf from /etc/swift unless told otherwise
#   (set_swift_dir): point it at DIR/etc before anything loads the storage
#   policies;
# - log to stderr only (the log file), never to syslog;
# - start fast: skip eventlet's dnspython resolver (only IP literals are
#   used) and apply Swift's own eventlet monkey-patching first thing, while
#   the heap is small (eventlet runs gc.collect() once per existing RLock
#   when patching threads: ~1 s per daemon when done after Swift's imports).
cat >"$bindir/swift-server.py" <<'EOF'
import logging
import os
import sys

os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
import eventlet.patcher  # noqa: E402

# The same call as swift.common.utils.eventlet_monkey_patch(); Swift's own
# later call is then a no-op.
eventlet.patcher.monkey_patch(all=False, socket=True, select=True,
                              thread=True)

swift_dir, section, conf = sys.argv[1:4]
from swift.common import utils  # noqa: E402

utils.set_swift_dir(swift_dir)


class _NoSyslog(logging.NullHandler):
    def __init__(self, *args, **kwargs):
        logging.NullHandler.__init__(self)


_mods = [utils]
try:
    from swift.common.utils import logs as _logs  # newer Swift
    _mods.append(_logs)
except ImportError:
    pass
for _m in _mods:
    if hasattr(_m, "ThreadSafeSysLogHandler"):
        _m.ThreadSafeSysLogHandler = _NoSyslog

from swift.common.wsgi import run_wsgi  # noqa: E402

sys.exit(run_wsgi(conf, section, verbose=True))
EOF

# --- rings ---------------------------------------------------------------
# What `swift-ring-builder X.builder create 6 1 0; ... add; ... rebalance`
# does, through the same RingBuilder class, but in one Python process
# (each swift-ring-builder call costs ~0.8 s of imports; nine of them would
# triple the startup time).
if ! "$PY" - "$etc" "$account_port" "$container_port" "$object_port" \
    >"$logdir/rings.log" 2>&1 <<'EOF'
import os, sys
try:
    import swift.common.middleware.s3api  # noqa: F401
    from swift.common.ring import RingBuilder
except ImportError as e:
    sys.exit("python3-swift with s3api not importable (%s); apt-get install "
             "python3-swift python3-lxml" % e)
etc = sys.argv[1]
for kind, port in zip(("account", "container", "object"), sys.argv[2:5]):
    b = RingBuilder(6, 1, 0)  # part power 6, 1 replica, min_part_hours 0
    b.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
               "replication_ip": "127.0.0.1", "replication_port": int(port),
               "device": "d1", "weight": 100.0, "meta": ""})
    b.rebalance()
    b.validate()
    b.save(os.path.join(etc, kind + ".builder"))  # assigns the builder id
    b.get_ring().save(os.path.join(etc, kind + ".ring.gz"))
    print("%s ring: 1 device, 127.0.0.1:%s/d1" % (kind, port))
EOF
then
    cat "$logdir/rings.log" >&2
    die "building the rings failed"
fi

# --- start ---------------------------------------------------------------
# tempauth keeps its tokens and s3api's auth results in memcache: it refuses
# every request ("Memcache required") without the cache filter, so a private
# memcached runs too.
names=(memcached account container object proxy)
declare -A pid_of port_of
port_of=([memcached]=$memcache_port [account]=$account_port
    [container]=$container_port [object]=$object_port [proxy]=$port)
ok=0
cleanup() {
    if [ "$ok" -ne 1 ]; then
        for n in "${names[@]}"; do
            if [ -n "${pid_of[$n]:-}" ]; then
                kill "${pid_of[$n]}" 2>/dev/null || true
            fi
        done
        rm -f "$rundir"/*.pid
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

for n in "${names[@]}"; do
    : >"$logdir/$n.log"
    if [ "$n" = memcached ]; then
        # -U 0: no UDP; -u: memcached refuses to run as root without it.
        memcached -l 127.0.0.1 -p "$memcache_port" -U 0 -m 64 -c 1024 \
            -u "$user" </dev/null >>"$logdir/$n.log" 2>&1 &
    else
        "$PY" "$bindir/swift-server.py" "$etc" "$n-server" \
            "$etc/$n-server.conf" </dev/null >>"$logdir/$n.log" 2>&1 &
    fi
    pid_of[$n]=$!
    echo "${pid_of[$n]}" >"$rundir/$n.pid"
done

alive() { # pid: running and not a zombie (builtins only: no forks)
    local _pid _comm st=Z
    kill -0 "$1" 2>/dev/null || return 1
    read -r _pid _comm st _ <"/proc/$1/stat" 2>/dev/null || true
    [ "$st" != Z ]
}

healthy() { # name port: the daemon answers (bash /dev/tcp: no forks)
    local line='' req=$'GET /healthcheck HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n'
    if [ "$1" = memcached ]; then req=$'version\r\n'; fi
    {
        printf '%s' "$req" >&3
        IFS= read -r -t 2 line <&3
    } 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$2" || true
    [[ $line == "HTTP/1."?" 200"* || $line == VERSION* ]]
}

deadline=$((SECONDS + ${SWIFT_START_TIMEOUT:-30}))
pending=("${names[@]}")
while [ ${#pending[@]} -gt 0 ]; do
    still=()
    for n in "${pending[@]}"; do
        if ! alive "${pid_of[$n]}"; then
            echo "start-swift: $n (pid ${pid_of[$n]}) exited during startup; last lines of $logdir/$n.log:" >&2
            tail -n 30 "$logdir/$n.log" >&2 || true
            exit 1
        fi
        if ! healthy "$n" "${port_of[$n]}"; then
            still+=("$n")
        fi
    done
    pending=("${still[@]+"${still[@]}"}")
    [ ${#pending[@]} -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
        for n in "${pending[@]}"; do
            echo "start-swift: $n did not answer on 127.0.0.1:${port_of[$n]} within ${SWIFT_START_TIMEOUT:-30}s; last lines of $logdir/$n.log:" >&2
            tail -n 30 "$logdir/$n.log" >&2 || true
        done
        exit 1
    fi
    sleep 0.05
done

ok=1
echo "S3_ENDPOINT=http://127.0.0.1:$port"
echo "S3_ACCESS_KEY=test:tester"
echo "S3_SECRET_KEY=testing"
echo "S3_REGION=us-east-1"
pids=()
for n in "${names[@]}"; do pids+=("${pid_of[$n]}"); done
echo "PIDS=${pids[*]}"
