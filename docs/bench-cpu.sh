#!/bin/bash
# CPU time and syscalls of a demo cluster per message, under one `bench load`
# run: steadier than msg/s on a shared 2-core machine, since it does not
# depend on how much CPU the load tool and the neighbours got.
# Usage: docs/bench-cpu.sh DEMO_BINARY CONF_DIR GATE_PORT MSG_ID [CONNS] [WINDOW]
#   e.g. docs/bench-cpu.sh target/release/demo /tmp/ab/new 22910 6 10 1
# Needs perf (linux-perf) with syscall tracepoints; bench from target/release.
BENCH=${BENCH:-$(dirname "$0")/../target/release/bench}
OUT=$(mktemp -d)
"$1" --conf "$2" > "$OUT/demo.log" 2>&1 & D=$!
sleep 2
perf stat -x, -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,task-clock' \
  -p $D -o "$OUT/perf" -- "$BENCH" load --addr 127.0.0.1:$3 --msg-id $4 --conns ${5:-10} --window ${6:-1} ${EXTRA_LOAD:-} \
  --size 64 --duration 4 --warmup 0 > "$OUT/load" 2>&1
kill -INT $D; wait $D
n=$(grep msg/s "$OUT/load" | awk '{print $1}')
grep msg/s "$OUT/load"
awk -F, -v n="$n" '/^[0-9]/{ if ($3 ~ /task-clock/) printf "  demo CPU %.3f us per msg\n", $1*1000/n; else printf "  %-32s %.3f per msg\n", $3, $1/n}' "$OUT/perf"
rm -rf "$OUT"
