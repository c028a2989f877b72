#!/usr/bin/env bash
# Start a throwaway one-node Slurm cluster for the tests and print its slurm.conf path on stdout.
#
#   export SLURM_CONF=$(.ci/slurm.sh)     # start (or reuse) the cluster
#   .ci/slurm.sh stop                     # stop it and delete its files
#
# Needs root (slurmd runs jobs as their submitter, munged and slurmctld as root here) and
# installs Debian's slurm-wlm and munge with apt-get when they are missing. Everything lives in
# $SUITE_SLURM_DIR (default /tmp/suite-slurm): a fresh munge key and its munged socket, the
# slurm.conf, state, spool, pid and log files. slurmctld and slurmd listen on 127.0.0.1, ports
# $SUITE_SLURM_PORT (default 6817) and the one after; the node is `localhost`, one partition
# `debug` with every core, no accounting. Nothing outside that folder is touched: Slurm's
# commands find the cluster only through SLURM_CONF. Progress goes to stderr; only the conf path
# goes to stdout. Running it again while the cluster answers prints the same path. Where it
# cannot run it exits non-zero with the reason on stderr, having started nothing.
set -euo pipefail

DIR=${SUITE_SLURM_DIR:-/tmp/suite-slurm}
PORT=${SUITE_SLURM_PORT:-6817}
CONF=$DIR/slurm.conf

fail() { echo "slurm.sh: $*" >&2; exit 1; }

stop_daemon() {  # stop_daemon NAME: SIGTERM the daemon in $DIR/NAME.pid, then SIGKILL after 10 s
    local pidfile=$DIR/$1.pid pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop_cluster() {
    if [ -f "$CONF" ] && command -v scancel >/dev/null 2>&1; then  # the jobs first: their steps die with them
        SLURM_CONF=$CONF timeout 10 scancel --user "$(id -un)" >/dev/null 2>&1 || true
    fi
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
}

up() {  # the controller answers and its node is up (idle, or busy with jobs)
    [ -f "$CONF" ] || return 1
    SLURM_CONF=$CONF timeout 10 sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'
}

runs_a_step() {  # a fresh cluster's node runs a step (it is idle: the step starts at once)
    up && SLURM_CONF=$CONF timeout 20 srun --quiet -N1 -n1 -t1 true >/dev/null 2>&1
}

if [ "${1:-}" = stop ]; then
    stop_cluster
    rm -rf "$DIR"
    exit 0
fi
[ -z "${1:-}" ] || fail "unknown argument '$1' (use: $0, or $0 stop)"

[ "$(uname -s)" = Linux ] || fail "needs Linux (this is $(uname -s)); the Slurm tests will skip"
[ "$(id -u)" = 0 ] || fail "needs root to run munged, slurmctld and slurmd; the Slurm tests will skip"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || fail "slurmctld, slurmd or munged missing and no apt-get to install slurm-wlm munge"
    echo "installing slurm-wlm munge ..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >&2 \
        || fail "apt-get could not install slurm-wlm munge"
fi

if up; then  # already running (perhaps busy with a test's jobs): reuse it
    echo "$CONF"
    exit 0
fi

stop_cluster  # leftovers of a cluster that no longer answers
for port in "$PORT" $((PORT + 1)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        fail "port $port on 127.0.0.1 is in use (another Slurm?); set SUITE_SLURM_PORT to a free pair"
    fi
done
rm -rf "$DIR"
mkdir -p "$DIR"/{munge,state,spool,log}
chmod 700 "$DIR" "$DIR/munge"

# munge: a key of our own, its socket in $DIR (Slurm is pointed at it by AuthInfo)
head -c 1024 /dev/urandom > "$DIR/munge/munge.key"
chmod 400 "$DIR/munge/munge.key"
munged --force --socket="$DIR/munge/socket" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed" \
    >"$DIR/log/munged.out" 2>&1 || fail "munged did not start: $(tail -n 3 "$DIR/log/munged.out" "$DIR/log/munged.log" 2>/dev/null)"

CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
cat > "$CONF" <<EOF
# A throwaway one-node cluster for the suite's tests (.ci/slurm.sh); deleted by '.ci/slurm.sh stop'.
ClusterName=suite-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
KillWait=30
SchedulerParameters=sched_interval=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

export SLURM_CONF=$CONF
slurmctld -f "$CONF" >"$DIR/log/slurmctld.out" 2>&1 \
    || { stop_cluster; fail "slurmctld did not start: $(tail -n 3 "$DIR/log/slurmctld.log" 2>/dev/null)"; }
slurmd -f "$CONF" -N localhost >"$DIR/log/slurmd.out" 2>&1 \
    || { stop_cluster; fail "slurmd did not start: $(tail -n 3 "$DIR/log/slurmd.log" 2>/dev/null)"; }
for _ in $(seq 60); do
    if runs_a_step; then
        echo "Slurm $(sinfo --version | awk '{print $2}') up on 127.0.0.1:$PORT (files in $DIR; stop with: $0 stop)" >&2
        echo "$CONF"
        exit 0
    fi
    sleep 0.5
done
stop_cluster
fail "the cluster did not answer within 30 s (logs in $DIR/log: $(tail -n 2 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" 2>/dev/null | tr '\n' ' '))"
