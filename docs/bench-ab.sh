#!/bin/bash
# Usage: release binaries (bench + demo) of the three builds in
# /tmp/before-bin, /tmp/after-bin, /tmp/final-bin; conf dirs /tmp/ab/{before,after,final}
# (the suite's demo conf with distinct gate ports 22510/22610/22810 and each
# build's own route.json); then run this script.
# A/B/C: the demo of c553ec7 (before), ff976e9 (Node split + idle memory)
# and final main, same minutes, interleaved, baseline echo server alongside.
cd /tmp/ab
/tmp/before-bin/demo --conf before > before.log 2>&1 & B=$!
/tmp/after-bin/demo --conf after > after.log 2>&1 & A=$!
/tmp/final-bin/demo --conf final > final.log 2>&1 & F=$!
/tmp/final-bin/bench echo-server --addr 127.0.0.1:22710 > echo.log 2>&1 & E=$!
sleep 2
for round in 1 2 3; do
  for t in "base 22710 5" "before 22510 6" "split 22610 6" "final 22810 6" "before-local 22510 5" "final-local 22810 5"; do
    set -- $t
    for shape in "10 1" "100 16"; do
      set -- $t $shape
      out=$(/tmp/final-bin/bench load --addr 127.0.0.1:$2 --msg-id $3 --conns $4 --window $5 --size 64 --duration 4 --warmup 1 2>&1 | grep -E "msg/s" | head -1)
      echo "round=$round who=$1 conns=$4 window=$5 :: $out"
    done
  done
done
kill -INT $B $A $F $E
