#!/bin/bash
# TCP, WebSocket, TLS and WSS through one gate, interleaved in the same
# minutes: a plain demo cluster (/tmp/ws/on: gate TCP 23510, WsPort 23515)
# and a TLS one (/tmp/tls/conf: the same with "tls_cert"/"tls_key" made by
# `bench cert --dir /tmp/tls/conf`; TLS on 23710, WSS on 23715).
# Release binaries in /tmp/new-bin.
BENCH=/tmp/new-bin/bench DURATION=3
. "$(dirname "$0")/bench-lib.sh"
/tmp/new-bin/demo --conf /tmp/ws/on > /tmp/ws/on.log 2>&1 & A=$!
/tmp/new-bin/demo --conf /tmp/tls/conf > /tmp/tls/tls.log 2>&1 & T=$!
sleep 2
CA=/tmp/tls/conf/gate.pem
for round in 1 2 3; do
  for shape in "10 16" "10 1"; do
    set -- $shape
    for m in "local 5" "fwd 6"; do
      set -- $shape $m
      echo "round=$round tcp-$3 c$1w$2 $(L 23510 $4 $1 $2)"
      echo "round=$round ws-$3 c$1w$2 $(L 23515 $4 $1 $2 --ws /)"
      echo "round=$round tls-$3 c$1w$2 $(L 23710 $4 $1 $2 --tls $CA)"
      echo "round=$round wss-$3 c$1w$2 $(L 23715 $4 $1 $2 --ws / --tls $CA)"
    done
  done
done
kill -INT $A $T; wait
