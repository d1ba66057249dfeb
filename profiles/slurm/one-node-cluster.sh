#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to run profiles/slurm for real where no cluster is at hand
# (tests/test_slurm.py does; so can anyone trying the profile). Debian or Ubuntu, as root.
#
#   bash profiles/slurm/one-node-cluster.sh install       # apt-get install slurm-wlm munge
#   bash profiles/slurm/one-node-cluster.sh start DIR     # munged, slurmctld, slurmd; state and logs in DIR
#   bash profiles/slurm/one-node-cluster.sh stop DIR      # stops the daemons it started, removes its config
#
# Its config goes to /etc/slurm/slurm.conf, where every SLURM command and job step looks (the executor
# plugin clears SLURM_* variables, SLURM_CONF included, inside jobs); a config there that this script did
# not write is left alone and the start refused.
# One node with every core of this machine and 3/4 of its memory, one partition named `local`, no GPU,
# no accounting database (so the executor plugin is told to ask squeue for job states and to submit
# without an account: --slurm-status-command squeue --slurm-no-account).
set -euo pipefail
cmd=${1:?install, start DIR or stop DIR}

if [ "$cmd" = install ]; then
    command -v slurmctld >/dev/null && command -v munged >/dev/null && exit 0
    [ "$(id -u)" = 0 ] || { echo "one-node-cluster: installing slurm-wlm and munge needs root" >&2; exit 2; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
    exit 0
fi

dir=$(realpath -m "${2:?give the folder for the cluster}")
conf=/etc/slurm/slurm.conf
marker="# written by maml-convergence profiles/slurm/one-node-cluster.sh"
if [ "$cmd" = stop ]; then
    for pid in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    grep -qxF "$marker" "$conf" 2>/dev/null && rm -f "$conf"
    exit 0
fi
[ "$cmd" = start ] || { echo "one-node-cluster: unknown command $cmd" >&2; exit 2; }

node=$(hostname -s)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) * 3 / 4 / 1024 ))
if [ -f "$conf" ] && ! grep -qxF "$marker" "$conf"; then
    echo "one-node-cluster: $conf exists and is not this script's: a cluster is configured here already" >&2
    exit 2
fi
mkdir -p "$dir/state" "$dir/spool" "$dir/munge" /etc/slurm
cat > "$conf" <<EOF
$marker
ClusterName=onenode
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
NodeName=$node CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
munged --force --socket="$dir/munge/munge.socket" --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" \
    --seed-file="$dir/munge/munge.seed"
slurmctld
slurmd
for _ in $(seq 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
        echo "one-node-cluster: $node idle, $(nproc) CPUs, ${mem} MB ($conf)"
        exit 0
    fi
    sleep 1
done
echo "one-node-cluster: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
exit 1
