# Sourced by the docs/bench-*.sh scripts.
# L PORT MSG_ID CONNS WINDOW [more `bench load` flags]: the msg/s of one
# `bench load` run (64 B, 1 s warm-up) against 127.0.0.1:PORT, with the
# bench binary $BENCH for $DURATION seconds (both set by the script).
L() {
  "$BENCH" load --addr 127.0.0.1:$1 --msg-id $2 --conns $3 --window $4 --size 64 \
    --duration "$DURATION" --warmup 1 "${@:5}" 2>&1 | grep -E "msg/s" | head -1 | sed 's/.*= //; s/ msg.*//'
}
