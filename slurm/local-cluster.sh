#!/usr/bin/env bash
# Starts and stops a throw-away one-node Slurm cluster on this machine, for
# end-to-end tests (CI runs it as root in a fresh Debian 12 container, maybe
# without systemd).
#
#   slurm/local-cluster.sh start DIR   # prints: export SLURM_CONF=DIR/slurm.conf
#   slurm/local-cluster.sh stop DIR    # idempotent
#
# Everything lives under DIR: slurm.conf, the munge key and socket, spool and
# state folders, logs and pid files. Nothing in /etc is read or written: the
# clients and daemons find the config through SLURM_CONF, and munged's socket
# is moved under DIR (slurm.conf AuthInfo=socket=...), so a munged or Slurm
# daemon that the package install may have started is left alone and cannot
# interfere (our daemons also use their own ports, see PORT_BASE below).
#
# Use in a caller:  eval "$(slurm/local-cluster.sh start "$dir")"
#
# Environment knobs (optional):
#   LOCAL_SLURM_PORT_BASE  slurmctld port; slurmd uses the next one (16817)
#   LOCAL_SLURM_MIN_JOB_AGE  seconds a finished job stays in squeue (30)
set -euo pipefail

prog=${0##*/}

die() { echo "$prog: $*" >&2; exit 1; }

usage() {
  echo "usage: $prog start|stop DIR" >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
cmd=$1
# An absolute path: the daemons chdir, and the path goes into slurm.conf.
mkdir -p "$2"
dir=$(cd "$2" && pwd -P)

conf=$dir/slurm.conf
run=$dir/run
logs=$dir/log
munge_dir=$dir/munge
munge_sock=$munge_dir/munge.socket
port_base=${LOCAL_SLURM_PORT_BASE:-16817}
# Every daemon we start carries this variable, and so does every slurmstepd
# (slurmd passes on its environment), which lets `stop` find the slurmstepd
# processes of this cluster and no other.
marker="LOCAL_SLURM_CLUSTER_DIR=$dir"

# pid_alive PIDFILE: true when the file names a live process.
pid_alive() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# fail WHAT LOG: the one-line reason, then the tails of the log and of the
# daemon's stdout/stderr (LOG with .out for .log) for the detail.
fail() {
  local f
  echo "$prog: $1 (log: $2)" >&2
  for f in "$2" "${2%.log}.out"; do
    if [[ -s $f ]]; then
      echo "--- last lines of $f:" >&2
      tail -n 25 "$f" >&2
    fi
  done
  exit 1
}

# The processes this cluster started: our daemons by pid file, plus any
# slurmstepd (and the daemons again) found by the marker in their
# environment, in case a pid file was lost.
cluster_pids() {
  local f p
  for f in "$run"/munged.pid "$run"/slurmctld.pid "$run"/slurmd.pid; do
    if pid_alive "$f"; then
      echo "$(<"$f")"
    fi
  done
  for p in /proc/[0-9]*; do
    case $(cat "$p/comm" 2>/dev/null) in
      slurmstepd | slurmd | slurmctld | munged) ;;
      *) continue ;;
    esac
    if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "$marker"; then
      echo "${p#/proc/}"
    fi
  done | sort -u
}

do_stop() {
  local ids pids i
  if pid_alive "$run/slurmctld.pid" && [[ -f $conf ]]; then
    export SLURM_CONF=$conf
    ids=$(timeout 10 squeue -h -o %A 2>/dev/null || true)
    if [[ -n $ids ]]; then
      # KILL first: a plain scancel sends SIGTERM and waits KillWait (30 s)
      # for jobs that trap it, which only slows a teardown.
      # shellcheck disable=SC2086 # ids is a whitespace-separated list
      timeout 10 scancel --quiet --full --signal=KILL $ids 2>/dev/null || true
      # shellcheck disable=SC2086
      timeout 10 scancel --quiet $ids 2>/dev/null || true
      # Give slurmd a moment to reap the steps before it goes away.
      for ((i = 0; i < 20; i++)); do
        [[ -z $(timeout 5 squeue -h -t RUNNING,COMPLETING -o %A 2>/dev/null) ]] && break
        sleep 0.5
      done
    fi
  fi
  pids=$(cluster_pids)
  [[ -n $pids ]] || { rm -f "$run"/*.pid; return 0; }
  # shellcheck disable=SC2086 # pids is a whitespace-separated list
  kill -TERM $pids 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    pids=$(cluster_pids)
    [[ -n $pids ]] || break
    sleep 0.25
  done
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$run"/*.pid
}

# port_busy PORT: something accepts connections on 127.0.0.1:PORT.
port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# launch NAME CMD...: runs a daemon in the foreground mode of its own, in
# the background here, in a session of its own (so a Ctrl-C or the end of
# the caller's process group does not reach it), with its stdout and stderr
# in DIR/log/NAME.out: nothing may keep the caller's stdout open, or
# `eval "$(...)"` would hang. (Errors before the daemon opens its log, such
# as a bad slurm.conf, only reach the .out file.)
launch() {
  local name=$1
  shift
  env "$marker" SLURM_CONF="$conf" setsid "$@" </dev/null >"$logs/$name.out" 2>&1 &
  # Our own record of the pid; the daemons write the same pid file
  # themselves, but only once they got far enough.
  echo "$!" >"$run/$name.pid"
}

# wait_for NAME SECONDS CHECK...: polls CHECK until it succeeds; fails with
# the log's tail if the daemon dies or time runs out.
wait_for() {
  local name=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 4; i++)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    pid_alive "$run/$name.pid" || fail "$name exited during start-up" "$logs/$name.log"
    sleep 0.25
  done
  fail "$name did not become ready within ${secs}s" "$logs/$name.log"
}

munge_ok() {
  munge -n -S "$munge_sock" | unmunge -S "$munge_sock"
}

ctld_ok() {
  scontrol ping | grep -q 'is UP'
}

node_state() {
  sinfo -h -n "$node" -o %T 2>/dev/null
}

write_conf() {
  local cpus mem_mb margin real_mem
  # GNU nproc takes OMP_NUM_THREADS as a limit, and the test command sets it to 1.
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  # The tests run two one-CPU tasks at once (rank 0 and a worker; or an
  # allocation and a second one that must find the database held): declare at
  # least 2 CPUs (config_overrides: slurmd believes slurm.conf) and let a
  # 1-CPU machine time-share them.
  ((cpus >= 2)) || cpus=2
  mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
  # Leave room for the OS and the test harness: 10%, at least 256 MB.
  margin=$((mem_mb / 10 > 256 ? mem_mb / 10 : 256))
  real_mem=$((mem_mb - margin))
  ((real_mem >= 256)) || die "too little memory (${mem_mb} MB) for a node"

  # An empty plugin stack: otherwise Slurm would look for plugstack.conf
  # next to the system's slurm.conf, outside DIR.
  : >"$dir/plugstack.conf"

  cat >"$conf" <<EOF
# Generated by $prog for a one-node test cluster; rewritten on every start.
ClusterName=localtest
# The address is given so that nothing depends on the host name resolving.
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port_base
SlurmdPort=$((port_base + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits (as BeginTime) after
# it finished completing before it may run again: cred_expire+1 s, 121 s by
# default, which would stall every requeue test by two minutes.
AuthInfo=socket=$munge_sock,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/plugstack.conf
MailProg=/bin/true

# No cgroups: a container may not give us a writable cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none

# CR_CPU_Memory rather than CR_Core_Memory: allocation by CPU works whatever
# the topology (a 2-CPU container may be one core with two threads).
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# Without a default, a job that does not ask for memory would get the whole
# node and run alone.
DefMemPerCPU=$((real_mem / cpus))

# Scheduling at once: the main loop every second rather than every minute,
# backfill every second.
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1,sched_min_interval=0

JobRequeue=1
# A node that was down (e.g. slurmd restarted) comes back by itself.
ReturnToService=2

AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none

# Short timeouts for tests, but KillWait long enough for a job to write a
# checkpoint between SIGTERM and SIGKILL.
KillWait=30
MinJobAge=${LOCAL_SLURM_MIN_JOB_AGE:-30}
InactiveLimit=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=30
BatchStartTimeout=10
UnkillableStepTimeout=60

SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

do_start() {
  local i state
  # slurmd starts every job as its owner, which only root can do.
  [[ $(id -u) -eq 0 ]] || die "must run as root (slurmd runs jobs as their users); CI runs as root"
  command -v munged >/dev/null || die "munged not found (apt-get install munge)"
  command -v slurmctld >/dev/null || die "slurmctld not found (apt-get install slurm-wlm)"

  # A fresh cluster every time, whatever a previous start left behind.
  do_stop

  # Unix socket paths are limited to 108 bytes; say so rather than let
  # munged or slurmstepd fail obscurely.
  ((${#munge_sock} <= 100)) || die "DIR path too long for a socket path: $munge_sock"

  for i in "$port_base" $((port_base + 1)); do
    ! port_busy "$i" || die "port $i is in use (another slurmctld/slurmd?); set LOCAL_SLURM_PORT_BASE"
  done

  node=$(hostname -s 2>/dev/null || true)
  [[ $node =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || node=localhost

  # Stale job state would bring old jobs back; the tests want an empty
  # cluster.
  rm -rf "$dir/state" "$dir/spool"
  mkdir -p "$run" "$logs" "$munge_dir" "$dir/state" "$dir/spool"
  # munged refuses key and socket folders that others may write to, and
  # warns unless all may search the socket's folder.
  chmod 755 "$dir" "$munge_dir"
  write_conf

  if [[ ! -s $munge_dir/munge.key ]]; then
    # 1024 random bytes is what mungekey --create writes.
    (umask 077 && head -c 1024 /dev/urandom >"$munge_dir/munge.key")
  fi
  chmod 400 "$munge_dir/munge.key"

  # --force: run as root and accept a socket left over by a killed munged.
  launch munged munged --foreground --force \
    --socket="$munge_sock" --key-file="$munge_dir/munge.key" \
    --pid-file="$run/munged.pid" --seed-file="$munge_dir/munged.seed" \
    --log-file="$logs/munged.log"
  wait_for munged 20 munge_ok

  export SLURM_CONF=$conf
  launch slurmctld slurmctld -D -f "$conf"
  wait_for slurmctld 30 ctld_ok

  # -N: the node name is ours, whatever the host calls itself.
  launch slurmd slurmd -D -f "$conf" -N "$node"

  for ((i = 0; i < 240; i++)); do
    state=$(node_state || true)
    case $state in
      idle) break ;;
      drain* | down* | fail* | inval*)
        # Unless slurmd just registered and the state is about to change,
        # this will not fix itself.
        if ((i > 20)); then
          fail "node $node is $state: $(sinfo -h -R -o %E 2>/dev/null | head -n 1)" "$logs/slurmd.log"
        fi
        ;;
    esac
    pid_alive "$run/slurmd.pid" || fail "slurmd exited during start-up" "$logs/slurmd.log"
    pid_alive "$run/slurmctld.pid" || fail "slurmctld exited during start-up" "$logs/slurmctld.log"
    sleep 0.25
  done
  [[ $state == idle ]] || fail "node $node not idle within 60s (state: ${state:-none})" "$logs/slurmd.log"

  echo "export SLURM_CONF=$conf"
}

case $cmd in
  start) do_start ;;
  stop) do_stop ;;
  *) usage ;;
esac
