#!/bin/bash
# Usage: build the two versions' release binaries into /tmp/before-bin and
# /tmp/after-bin (bench + demo), write conf dirs /tmp/ab/{before,after} (the
# suite's demo conf with distinct ports), then run this script.
# A/B: the demo before (c553ec7 runtime) and after (split + idle memory), same
# machine, same minutes, interleaved; baseline echo-server alongside.
cd /tmp/ab
/tmp/before-bin/demo --conf before > before.log 2>&1 & B=$!
/tmp/after-bin/demo --conf after > after.log 2>&1 & A=$!
/tmp/after-bin/bench echo-server --addr 127.0.0.1:22710 > echo.log 2>&1 & E=$!
sleep 2
for round in 1 2 3; do
  for t in "base 22710 5" "before 22510 6" "after 22610 6"; do
    set -- $t
    for shape in "10 1" "100 16"; do
      set -- $t $shape
      out=$(/tmp/after-bin/bench load --addr 127.0.0.1:$2 --msg-id $3 --conns $4 --window $5 --size 64 --duration 4 --warmup 1 2>&1 | grep -E "msg/s" | head -1)
      echo "round=$round who=$1 conns=$4 window=$5 :: $out"
    done
  done
done
kill -INT $B $A $E
