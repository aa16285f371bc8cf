#!/usr/bin/env bash
# A throwaway single-node Slurm (munged + slurmctld + slurmd) for tests and for trying the cluster
# recipes on one machine. Apart from installing the packages, everything it writes lives in DIR
# (config, munge key and socket, state, logs, PID files; SLURM_CONF points the tools at it): it
# writes nothing under /etc, creates no cgroups (proctrack/linuxproc, task/none) and stops its
# daemons by the PIDs it recorded.
#
#   bash tests/slurm/single_node_slurm.sh up DIR     # start; prints the line to source (SLURM_CONF)
#   source DIR/env.sh; sbatch --wrap hostname; squeue
#   bash tests/slurm/single_node_slurm.sh down DIR   # cancel its jobs, stop the daemons
#
# Needs root (slurmd starts jobs as their user) and Debian's slurm-wlm + munge, installed here with
# apt-get when missing. Exit status 77: this machine cannot run it (not root, no package), with the
# reason on stderr; other non-zero: it should have started and did not (the logs are in DIR/log).
#
# Environment (optional): SLURM_CPUS [nproc], SLURM_REAL_MEMORY_MB [90 % of RAM],
# SLURM_UP_TIMEOUT seconds to wait for the node to be idle [60].
set -euo pipefail

SKIP=77
# The daemons live in /usr/sbin, which a root shell made by `su` may not have on its PATH.
export PATH=$PATH:/usr/sbin:/sbin

die() { echo "single_node_slurm: $*" >&2; exit 1; }
skip() { echo "single_node_slurm: $*" >&2; exit "$SKIP"; }

install_packages() {
    local missing=()
    for exe in munged slurmctld slurmd sbatch; do
        command -v "$exe" >/dev/null 2>&1 || missing+=("$exe")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null 2>&1 || skip "no ${missing[*]} and no apt-get to install slurm-wlm munge"
    echo "single_node_slurm: installing slurm-wlm munge (missing: ${missing[*]})" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; } >/dev/null \
        || skip "apt-get install slurm-wlm munge failed"
}

# A TCP port nothing listens on, from a range clear of Slurm's defaults (6817-6819), so a real
# Slurm or a second test session on this machine does not clash.
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free TCP port found"
}

# The node's name: slurmd is started as this node (-N), so it only has to be a valid name.
short_host() {
    local h
    h=$(uname -n)
    echo "${h%%.*}"
}

write_config() {
    local dir=$1 host cpus mem ctld_port slurmd_port
    host=$(short_host)
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    while [[ $slurmd_port == "$ctld_port" ]]; do slurmd_port=$(free_port); done
    cpus=${SLURM_CPUS:-$(nproc)}
    mem=${SLURM_REAL_MEMORY_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)}
    cat >"$dir/slurm.conf" <<CONF
# written by single_node_slurm.sh: a throwaway single-node cluster, all state under $dir
ClusterName=flowprep-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munged.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: processes are tracked by parentage, tasks are not confined (and no cgroup.conf:
# Slurm 22.05 has no CgroupPlugin=disabled, and with these plugins slurmd loads no cgroup plugin)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
# finished jobs stay visible to scontrol for 10 minutes (there is no accounting database)
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    printf 'export SLURM_CONF=%q\n' "$dir/slurm.conf" >"$dir/env.sh"
}

start_munge() {
    local m=$1/munge
    mkdir -p "$m"
    chmod 700 "$m"
    [[ -f $m/munge.key ]] || { dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none; chmod 600 "$m/munge.key"; }
    munged --force --key-file="$m/munge.key" --socket="$m/munged.sock" --pid-file="$m/munged.pid" \
        --log-file="$m/munged.log" --seed-file="$m/munged.seed" \
        || die "munged did not start: $(tail -3 "$m/munged.log" 2>/dev/null)"
}

wait_idle() {
    local dir=$1 deadline=$((SECONDS + ${SLURM_UP_TIMEOUT:-60})) state=""
    while ((SECONDS < deadline)); do
        state=$(sinfo -h -N -o '%T' 2>/dev/null || true)
        [[ $state == idle ]] && return 0
        sleep 0.5
    done
    die "the node is not idle after ${SLURM_UP_TIMEOUT:-60} s (state: '${state}'); logs in $dir/log"
}

up() {
    local dir
    [[ $(id -u) == 0 ]] || skip "needs root (slurmd runs jobs as their user)"
    install_packages
    mkdir -p "$1"
    dir=$(realpath "$1")
    mkdir -p "$dir"/{state,spool,run,log}
    write_config "$dir"
    export SLURM_CONF=$dir/slurm.conf
    start_munge "$dir"
    slurmctld -i || die "slurmctld did not start: $(tail -5 "$dir/log/slurmctld.log" 2>/dev/null)"
    slurmd -N "$(short_host)" || die "slurmd did not start: $(tail -5 "$dir/log/slurmd.log" 2>/dev/null)"
    wait_idle "$dir"
    echo "source $dir/env.sh"
}

# Stop the daemon whose PID is in FILE: TERM, then KILL after 20 s.
stop_pid() {
    local file=$1 pid
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

down() {
    local dir
    dir=$(realpath "$1")
    [[ -f $dir/slurm.conf ]] || die "$dir holds no single-node Slurm"
    export SLURM_CONF=$dir/slurm.conf
    # Cancel this cluster's jobs first, so no job step outlives its slurmd.
    if [[ -f $dir/run/slurmctld.pid ]] && scancel --full --user=root 2>/dev/null; then
        for _ in $(seq 100); do
            [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    stop_pid "$dir/run/slurmd.pid"
    stop_pid "$dir/run/slurmctld.pid"
    stop_pid "$dir/munge/munged.pid"
}

case "${1:-}" in
    up) [[ $# == 2 ]] || die "usage: $0 up DIR"; up "$2" ;;
    down) [[ $# == 2 ]] || die "usage: $0 down DIR"; down "$2" ;;
    *) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac
