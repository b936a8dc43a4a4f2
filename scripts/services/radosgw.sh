#!/usr/bin/env bash
# A throw-away single-node Ceph cluster (1 mon, 1 in-memory OSD, radosgw) serving S3 on 127.0.0.1:PORT.
#
#   scripts/services/radosgw.sh DIR PORT   start; prints `export TEST_S3_...` lines on stdout
#   scripts/services/radosgw.sh stop DIR   stop the daemons started under DIR and wait for them to exit
#
# Everything (config, data, sockets, logs, pid files) lives under DIR/cluster; logs go to stderr and DIR.
# The monitor takes a free port of its own (not the fixed 6789) so that two clusters on one host, or a
# cluster whose predecessor is still exiting, cannot talk to each other's daemons. On failure the daemon
# logs are printed, the attempt is kept in DIR/failed-N and the bootstrap is retried once from scratch.
set -euo pipefail

ACCESS_KEY="lectern-test-access"
SECRET_KEY="lectern-test-secret-0123456789abcdef"
STEP_TIMEOUT_S=60
STOP_GRACE_S=${RADOSGW_STOP_GRACE_S:-3}

log() { printf 'radosgw.sh: %s\n' "$*" >&2; }

usage() {
    echo "usage: $0 DIR PORT | $0 stop DIR" >&2
    exit 2
}

# Succeeds when nothing listens on 127.0.0.1:$1 (TCP).
port_is_free() {
    [ -z "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]
}

free_port() {
    local p tries=0
    while [ "$tries" -lt 200 ]; do
        p=$((20000 + RANDOM % 20000))
        if port_is_free "$p"; then
            echo "$p"
            return 0
        fi
        tries=$((tries + 1))
    done
    log "no free port found"
    return 1
}

# Poll a command until it succeeds or $1 seconds pass.
wait_for() {
    local timeout_s=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout_s))
    until "$@" >/dev/null 2>&1; do
        if ! daemons_alive; then
            log "a daemon exited while waiting for $what"
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "timed out after ${timeout_s}s waiting for $what"
            return 1
        fi
        sleep 0.2
    done
}

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# All daemons spawned into $CLUSTER_DIR (set by bootstrap) are still running.
daemons_alive() {
    local pidfile
    [ -n "${CLUSTER_DIR:-}" ] || return 0
    for pidfile in "$CLUSTER_DIR"/run/*.pid; do
        [ -e "$pidfile" ] || continue
        pid_alive "$(cat "$pidfile")" || {
            log "$(basename "$pidfile" .pid) is not running"
            return 1
        }
    done
}

# Stop every daemon whose pid file is under $1 (a cluster dir): TERM, wait, then KILL.
stop_cluster() {
    local cdir=$1 pidfile pid pids=()
    [ -d "$cdir/run" ] || return 0
    for pidfile in "$cdir"/run/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if pid_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$pidfile"
    done
    # radosgw lingers about 6 s after SIGTERM; the data is in memory and thrown away anyway, so after a
    # short grace period the daemons are killed.
    local deadline=$((SECONDS + STOP_GRACE_S)) alive killed=0
    while :; do
        alive=()
        for pid in "${pids[@]+"${pids[@]}"}"; do
            if pid_alive "$pid"; then alive+=("$pid"); fi
        done
        [ "${#alive[@]}" -eq 0 ] && return 0
        if [ "$killed" -eq 0 ] && [ "$SECONDS" -ge "$deadline" ]; then
            log "killing daemons still running after ${STOP_GRACE_S}s: ${alive[*]}"
            kill -KILL "${alive[@]}" 2>/dev/null || true
            killed=1
        fi
        sleep 0.1
    done
}

dump_logs() {
    local cdir=$1 f
    for f in "$cdir"/log/*.log "$cdir"/log/*.out; do
        [ -s "$f" ] || continue
        echo "===== $f (last 60 lines) =====" >&2
        tail -n 60 "$f" >&2
    done
}

# Start a daemon detached from our stdout (so `eval "$(radosgw.sh ...)"` returns) and record its pid.
spawn() {
    local cdir=$1 name=$2
    shift 2
    setsid "$@" </dev/null >"$cdir/log/$name.out" 2>&1 &
    echo $! >"$cdir/run/$name.pid"
}

http_answers() {
    # Any HTTP status at all means the beast frontend is up; anonymous GET / answers 200 with a bucket list.
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/") || return 1
    [ "$code" != "000" ]
}

s3_user_ready() {
    # A signed request must succeed (user known to the gateway): 200 for ListBuckets with our keys.
    local code
    # curl 7.88 does not send x-amz-content-sha256 itself; radosgw needs it (here: SHA-256 of no body).
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
        --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" "http://127.0.0.1:$1/") || return 1
    [ "$code" = "200" ]
}

bootstrap() {
    local cdir=$1 port=$2 mon_port fsid osd_uuid osd_id conf
    mkdir -p "$cdir"/{run,log,mon,osd,rgw,tmp}
    CLUSTER_DIR=$cdir
    conf="$cdir/ceph.conf"
    mon_port=$(free_port)
    fsid=$(uuidgen)
    cat >"$conf" <<EOF
[global]
fsid = $fsid
mon_host = v1:127.0.0.1:$mon_port
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr2 = false
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
osd_objectstore = memstore
# The OSD's own start-up mon commands (crush location, device class) can race its first monmap and
# go out with a zero fsid ("wrong fsid", the OSD exits); the script places the OSD in the map instead.
osd_crush_update_on_start = false
osd_class_update_on_start = false
memstore_device_bytes = 4294967296
run_dir = $cdir/run
admin_socket = $cdir/run/\$name.asok
log_file = $cdir/log/\$name.log
keyring = $cdir/keyring
mon_data = $cdir/mon/\$id
osd_data = $cdir/osd/\$id
rgw_data = $cdir/rgw/\$id
tmp_dir = $cdir/tmp
crash_dir = $cdir/tmp
exec_dir = $cdir/tmp

[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:$port
rgw_dns_name = 127.0.0.1
EOF
    log "cluster dir=$cdir mon=127.0.0.1:$mon_port s3=127.0.0.1:$port fsid=$fsid"

    ceph-authtool --create-keyring "$cdir/keyring" --gen-key -n mon. --cap mon 'allow *' >&2
    monmaptool --create --addv a "[v1:127.0.0.1:$mon_port]" --fsid "$fsid" "$cdir/monmap" >&2
    ceph-mon -c "$conf" --mkfs -i a --monmap "$cdir/monmap" --keyring "$cdir/keyring" >&2
    spawn "$cdir" mon.a ceph-mon -c "$conf" -i a -f
    wait_for "$STEP_TIMEOUT_S" "the monitor" ceph -c "$conf" --connect-timeout 5 mon stat || return 1

    osd_uuid=$(uuidgen)
    osd_id=$(ceph -c "$conf" --connect-timeout 10 osd new "$osd_uuid")
    ceph -c "$conf" --connect-timeout 10 osd crush add "osd.$osd_id" 1.0 root=default host=localhost >&2
    mkdir -p "$cdir/osd/$osd_id"
    ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >&2
    spawn "$cdir" "osd.$osd_id" ceph-osd -c "$conf" -i "$osd_id" -f
    osd_up() { ceph -c "$conf" --connect-timeout 5 osd stat 2>/dev/null | grep -q '1 up'; }
    wait_for "$STEP_TIMEOUT_S" "the OSD to be up" osd_up || return 1

    mkdir -p "$cdir/rgw/rgw.a"
    spawn "$cdir" rgw.a radosgw -c "$conf" -n client.rgw.a -f
    wait_for "$STEP_TIMEOUT_S" "radosgw to answer HTTP" http_answers "$port" || return 1

    radosgw-admin -c "$conf" user create --uid=test --display-name=test \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$cdir/log/user-create.out" 2>&1 || {
        log "radosgw-admin user create failed"
        cat "$cdir/log/user-create.out" >&2
        return 1
    }
    wait_for "$STEP_TIMEOUT_S" "a signed S3 request to succeed" s3_user_ready "$port" || return 1
}

start() {
    local dir=$1 port=$2 attempt cdir rc started_at=$SECONDS
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    cdir="$dir/cluster"
    # A previous cluster in the same DIR must be gone (ports, memory) before we start another.
    stop_cluster "$cdir"
    if ! port_is_free "$port"; then
        log "port $port is already in use"
        exit 1
    fi
    for attempt in 1 2; do
        rm -rf "$cdir"
        # Not `if (bootstrap ...)`: errexit is ignored inside a condition, even in a subshell.
        set +e
        (
            set -e
            bootstrap "$cdir" "$port"
        )
        rc=$?
        set -e
        if [ "$rc" -eq 0 ]; then
            log "ready in $((SECONDS - started_at))s (attempt $attempt); logs in $cdir/log"
            echo "export TEST_S3_ENDPOINT=127.0.0.1:$port"
            echo "export TEST_S3_ACCESS_KEY=$ACCESS_KEY"
            echo "export TEST_S3_SECRET_KEY=$SECRET_KEY"
            return 0
        fi
        log "attempt $attempt failed; daemon logs follow"
        dump_logs "$cdir"
        stop_cluster "$cdir"
        rm -rf "$dir/failed-$attempt"
        mv "$cdir" "$dir/failed-$attempt"
    done
    log "giving up after 2 attempts; logs kept in $dir/failed-1 and $dir/failed-2"
    exit 1
}

case "${1:-}" in
    stop)
        [ $# -eq 2 ] || usage
        [ -d "$2" ] || exit 0
        stop_cluster "$(cd "$2" && pwd)/cluster"
        ;;
    "" | -h | --help) usage ;;
    *)
        [ $# -eq 2 ] || usage
        case "$2" in *[!0-9]* | "") usage ;; esac
        start "$1" "$2"
        ;;
esac
