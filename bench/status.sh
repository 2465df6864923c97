#!/usr/bin/env bash
# Status API throughput against the dev environment: requests/s and latency of
# GET /status/systems (served from memory) and GET /status/{system}/userinfo (two remote
# commands over the SSH pool: `id` and `sacctmgr`), with N concurrent clients, beside the
# floor: the same two commands as raw execs on an already open SSH connection (an OpenSSH
# ControlMaster; each exec still spawns an ssh client process).
# Also reports Ironcrest's RSS before and after. Usage: bench/status.sh [CLIENTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-16}
seconds=${2:-10}
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
eval "$(scripts/dev-env env)"
url=$IRONCREST_DEV_URL
system=cluster-slurm-ssh
token=$(scripts/dev-env token)
pid=$(cat "$IRONCREST_DEV_PREFIX/ironcrest/ironcrest.pid")
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

echo "Ironcrest pid $pid, RSS before: $(rss) KiB; $clients clients, ${seconds}s per run"
run() {
  local path=$1
  wrk -t2 -c"$clients" -d"${seconds}s" --latency -H "Authorization: Bearer $token" "$url$path" |
    awk -v path="$path" '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
      END {printf "%-36s %10s req/s  p50 %8s  p99 %8s  non-2xx %s\n", path, rps, p50, p99, (bad ? bad : 0)}'
}
run /status/systems
run "/status/$system/userinfo"
echo "RSS after: $(rss) KiB"

# Floor: userinfo's two commands over one multiplexed OpenSSH connection, $clients at a time, with a
# certificate signed by the same CA (a throwaway key, deleted afterwards).
tmp=$(mktemp -d)
trap 'ssh -S "$tmp/mux" -O exit x 2>/dev/null || true; rm -rf "$tmp"' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$tmp/key"
ssh-keygen -q -s "$IRONCREST_DEV_SSH_CA_KEY" -I bench -n fireuser -V +10m "$tmp/key.pub"
ssh_opts=(-p "$IRONCREST_DEV_SSH_PORT" -i "$tmp/key" -o UserKnownHostsFile="$IRONCREST_DEV_SSH_KNOWN_HOSTS"
  -o ControlPath="$tmp/mux" -o BatchMode=yes)
ssh "${ssh_opts[@]}" -o ControlMaster=yes -o ControlPersist=60 -fN "fireuser@$IRONCREST_DEV_SSH_HOST"
n=$((clients * 20))
start=$(date +%s.%N)
seq "$n" | xargs -P "$clients" -I{} ssh "${ssh_opts[@]}" "fireuser@$IRONCREST_DEV_SSH_HOST" 'LC_ALL=C id && LC_ALL=C sacctmgr --noheader --parsable2 show user name=fireuser withassoc format=DefaultAccount,Account' >/dev/null
end=$(date +%s.%N)
awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN {printf "%-36s %10.1f cmd/s  (raw exec on a multiplexed OpenSSH connection)\n", "floor: ssh id + sacctmgr", n / (e - s)}'
