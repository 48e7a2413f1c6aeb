#!/bin/bash
# WS vs TCP echo through one gate (metrics on), and gate-local TCP echo with
# metrics on vs off: two clusters of the final build, interleaved.
cd /tmp/ws
/tmp/final-bin/demo --conf on > on.log 2>&1 & A=$!
/tmp/final-bin/demo --conf off > off.log 2>&1 & B=$!
sleep 2
L="/tmp/final-bin/bench load --conns 10 --window 16 --size 64 --duration 4 --warmup 1"
for round in 1 2 3; do
  echo "round=$round tcp-local-on :: $($L --addr 127.0.0.1:23510 --msg-id 5 2>&1 | grep msg/s | head -1)"
  echo "round=$round ws-local-on :: $($L --addr 127.0.0.1:23515 --ws / --msg-id 5 2>&1 | grep msg/s | head -1)"
  echo "round=$round tcp-local-off :: $($L --addr 127.0.0.1:23610 --msg-id 5 2>&1 | grep msg/s | head -1)"
  echo "round=$round tcp-fwd-on :: $($L --addr 127.0.0.1:23510 --msg-id 6 2>&1 | grep msg/s | head -1)"
  echo "round=$round ws-fwd-on :: $($L --addr 127.0.0.1:23515 --ws / --msg-id 6 2>&1 | grep msg/s | head -1)"
  echo "round=$round tcp-fwd-off :: $($L --addr 127.0.0.1:23610 --msg-id 6 2>&1 | grep msg/s | head -1)"
done
kill -INT $A $B
