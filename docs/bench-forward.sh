#!/bin/bash
# The forward path, three builds interleaved in the same minutes, with the
# baseline echo server alongside: before the round (c553ec7), the start of
# this session (41eb479) and the current build. Release binaries (bench +
# demo) in /tmp/before-bin, /tmp/final-bin, /tmp/new-bin; conf dirs
# /tmp/ab/{before,final,new} (the suite's demo conf, gate ports
# 22510/22810/22910, each build's own route.json); then run this script.
# Then metrics on vs off (and WebSocket vs TCP) on the current build:
# /tmp/ws/{on,off} (gate 23510 with WsPort 23515 / gate 23610; settings
# "metrics": true / false).
BENCH=/tmp/new-bin/bench DURATION=4
. "$(dirname "$0")/bench-lib.sh"
cd /tmp/ab
/tmp/before-bin/demo --conf before > before.log 2>&1 & B=$!
/tmp/final-bin/demo --conf final > final.log 2>&1 & F=$!
/tmp/new-bin/demo --conf new > new.log 2>&1 & N=$!
/tmp/new-bin/bench echo-server --addr 127.0.0.1:22710 > echo.log 2>&1 & E=$!
sleep 2
for round in 1 2 3; do
  for shape in "10 1" "100 16"; do
    set -- $shape
    echo "round=$round base c$1w$2 $(L 22710 5 $1 $2)"
    for t in "before 22510" "start 22810" "now 22910"; do
      set -- $t $shape
      echo "round=$round $1-fwd c$3w$4 $(L $2 6 $3 $4)"
      echo "round=$round $1-local c$3w$4 $(L $2 5 $3 $4)"
    done
  done
done
kill -INT $B $F $N; wait $B $F $N
cd /tmp/ws
/tmp/new-bin/demo --conf on > on.log 2>&1 & A=$!
/tmp/new-bin/demo --conf off > off.log 2>&1 & O=$!
sleep 2
for round in 1 2 3; do
  for shape in "10 1" "10 16"; do
    set -- $shape
    echo "round=$round metrics-on-local c$1w$2 $(L 23510 5 $1 $2)"
    echo "round=$round metrics-off-local c$1w$2 $(L 23610 5 $1 $2)"
    echo "round=$round metrics-on-fwd c$1w$2 $(L 23510 6 $1 $2)"
    echo "round=$round metrics-off-fwd c$1w$2 $(L 23610 6 $1 $2)"
    echo "round=$round ws-local c$1w$2 $(L 23515 5 $1 $2 --ws /)"
    echo "round=$round ws-fwd c$1w$2 $(L 23515 6 $1 $2 --ws /)"
  done
done
kill -INT $A $O $E; wait
