#!/bin/bash
# TCP, WebSocket, TLS and WSS through one gate, interleaved in the same
# minutes: a plain demo cluster (/tmp/ws/on: gate TCP 23510, WsPort 23515)
# and a TLS one (/tmp/tls/conf: the same with "tls_cert"/"tls_key" made by
# `bench cert --dir /tmp/tls/conf`; TLS on 23710, WSS on 23715).
# Release binaries in /tmp/new-bin.
/tmp/new-bin/demo --conf /tmp/ws/on > /tmp/ws/on.log 2>&1 & A=$!
/tmp/new-bin/demo --conf /tmp/tls/conf > /tmp/tls/tls.log 2>&1 & T=$!
sleep 2
CA=/tmp/tls/conf/gate.pem
L() { /tmp/new-bin/bench load --addr 127.0.0.1:$1 --msg-id $2 --conns $3 --window $4 --size 64 --duration 3 --warmup 1 "${@:5}" 2>&1 | grep -E "msg/s" | head -1 | sed 's/.*= //; s/ msg.*//'; }
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
