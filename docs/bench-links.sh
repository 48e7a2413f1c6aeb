#!/bin/bash
# In-process links vs TCP links vs the build before them, baseline echo
# server alongside (BENCHMARKS.md, "round 4"). Release binaries (bench +
# demo) of the earlier build in /tmp/head-bin and of the current one in
# /tmp/fin-bin; conf dirs /tmp/ab/new (the suite's demo conf, gate 22910,
# im 22911/22912) and /tmp/ab/tcp (the same on 23010-23012 with
# "local_links": false in settings.json). The earlier build and the current
# one take turns on 22910; the TCP-links demo runs throughout.
BENCH=/tmp/fin-bin/bench DURATION=4
. "$(dirname "$0")/bench-lib.sh"
cd /tmp/ab
/tmp/fin-bin/bench echo-server --addr 127.0.0.1:22710 > echo.log 2>&1 & E=$!
/tmp/fin-bin/demo --conf tcp > tcp.log 2>&1 & T=$!
for build in head fin; do
  /tmp/$build-bin/demo --conf new > $build.log 2>&1 & D=$!
  sleep 1.5
  for round in 1 2 3; do
    for shape in "10 1" "100 16"; do
      set -- $shape
      echo "round=$round base c$1w$2 $(L 22710 5 $1 $2)"
      echo "round=$round $build-fwd c$1w$2 $(L 22910 6 $1 $2)"
      echo "round=$round tcp-links-fwd c$1w$2 $(L 23010 6 $1 $2)"
      echo "round=$round $build-local c$1w$2 $(L 22910 5 $1 $2)"
    done
  done
  kill -INT $D; wait $D
done
kill -INT $T $E; wait
