#!/bin/bash
# WebSocket vs TCP through one gate, same rounds, for an earlier build
# (/tmp/head-bin) and the current one (/tmp/fin-bin), both driven by the
# current load tool. Conf /tmp/ws/on: the suite's demo conf with gate-1 on
# 23510 and "WsPort": 23515, "WsPath": "/".
BENCH=/tmp/fin-bin/bench DURATION=3
. "$(dirname "$0")/bench-lib.sh"
cd /tmp/ws
for b in head fin; do
  /tmp/$b-bin/demo --conf on > $b.log 2>&1 & D=$!
  sleep 1.5
  for round in 1 2 3; do
    for shape in "100 16" "10 16"; do
      set -- $shape
      echo "$b round=$round local c$1w$2 tcp $(L 23510 5 $1 $2) ws $(L 23515 5 $1 $2 --ws /)"
      echo "$b round=$round fwd c$1w$2 tcp $(L 23510 6 $1 $2) ws $(L 23515 6 $1 $2 --ws /)"
    done
  done
  kill -INT $D; wait $D
done
