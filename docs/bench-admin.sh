#!/usr/bin/env bash
# /healthz latency of a gate's admin endpoint while 1,000 slowloris
# connections hold its port (issue 23 point 6).
#
#   cargo build --release -p demo -p bench
#   docs/bench-admin.sh                   # 1,000 attackers from 127.0.0.1
#   SOURCES=1000 docs/bench-admin.sh      # ... from 1,000 loopback addresses
#
# Starts the demo's gate alone (`demo --id 1`, release build) on free ports
# of a throwaway configuration, then `bench slowloris` against its admin
# port; prints the bench report (p50/p90/p99/max of PROBES probes).
# Environment: CONNS (1000), PROBES (100), SOURCES (1), TIMEOUT (10 s per
# probe), BASE (first of the three ports, 23100), extra `bench slowloris`
# flags as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO:-target/release/demo}
BENCH=${BENCH:-target/release/bench}
CONNS=${CONNS:-1000}
PROBES=${PROBES:-100}
SOURCES=${SOURCES:-1}
TIMEOUT=${TIMEOUT:-10}
BASE=${BASE:-23100}
for bin in "$DEMO" "$BENCH"; do
  [ -x "$bin" ] || { echo "missing $bin: cargo build --release -p demo -p bench" >&2; exit 2; }
done

conf=$(mktemp -d)
trap 'kill "$demo_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$conf"' EXIT
cat >"$conf/dinx.json" <<EOF
{"gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": $BASE,
           "AdminPort": $((BASE + 1))}],
 "im": [{"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": $((BASE + 2))}]}
EOF
cp conf/route.json "$conf/route.json"
echo '{"secret": "bench-admin-secret"}' >"$conf/settings.json"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$DEMO" --conf "$conf" --id 1 2>"$conf/demo.log" &
demo_pid=$!
for _ in $(seq 100); do
  grep -q "admin endpoint on" "$conf/demo.log" && break
  sleep 0.1
done
grep "admin endpoint on" "$conf/demo.log" || { cat "$conf/demo.log" >&2; exit 1; }

"$BENCH" slowloris --addr "127.0.0.1:$((BASE + 1))" --conns "$CONNS" --probes "$PROBES" \
  --sources "$SOURCES" --probe-timeout "$TIMEOUT" "$@"
