#!/usr/bin/env bash
# Builds the C# SDK (ZinxCluster.Client.dll) and its test runner with mono's
# mcs, starts a demo cluster on free loopback ports, and runs the tests with
# mono against it. Exits non-zero on any failure.
#
#   bash clients/csharp/test.sh              # everything
#   bash clients/csharp/test.sh protocol     # only tests whose name contains "protocol"
#
# Environment:
#   ZINX_DEMO_BIN=path    use this demo binary instead of `cargo build -p demo`
#   ZINX_DEMO_SETTINGS=.. settings.json text for the demo (default: below)
#   ZINX_RESUME=1         also run the session-resume tests against the demo
#   ZINX_REQUIRE_MONO=1   a missing mcs/mono is a failure, not a skip (CI)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$here/build"

for tool in mcs mono; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIPPED: the C# SDK tests need '$tool' (Debian packages mono-mcs and mono-runtime)" >&2
    if [ "${ZINX_REQUIRE_MONO:-}" = 1 ]; then
      exit 1
    fi
    exit 0
  fi
done

# C# 7.3 is the target (Unity); mcs accepts at most 7.2, so compiling with
# 7.2 keeps the code within 7.3. -noconfig/-nostdlib: only the assemblies of
# Unity's .NET 4.x / .NET Standard 2.0 profile are referenced.
lib=/usr/lib/mono/4.5
refs=(-noconfig -nostdlib "-r:$lib/mscorlib.dll" "-r:$lib/System.dll" "-r:$lib/System.Core.dll")
mkdir -p "$build"
echo "==> building ZinxCluster.Client.dll"
mapfile -t src < <(find "$here/src" -name '*.cs' | sort)
mcs -langversion:7.2 "${refs[@]}" -target:library -warnaserror+ -warn:4 \
  -doc:"$build/ZinxCluster.Client.xml" -out:"$build/ZinxCluster.Client.dll" "${src[@]}"
echo "==> building the test runner"
mapfile -t tests < <(find "$here/tests" "$here/generated" -name '*.cs' | sort)
mcs -langversion:7.2 "${refs[@]}" "-r:$build/ZinxCluster.Client.dll" -target:exe -warnaserror+ -warn:4 \
  -out:"$build/ZinxCluster.Client.Tests.exe" "${tests[@]}"

echo "==> compiling the README's chat example against a UnityEngine stub"
awk '/<!-- chat-example -->/ {f = 1; next} f && /^```csharp/ {p = 1; next} p && /^```/ {exit} p' \
  "$here/README.md" >"$build/ChatWindow.cs"
if ! grep -q "class ChatWindow" "$build/ChatWindow.cs"; then
  echo "the README's chat example (after <!-- chat-example -->) was not found" >&2
  exit 1
fi
mcs -langversion:7.2 "${refs[@]}" "-r:$build/ZinxCluster.Client.dll" -target:library -warnaserror+ \
  -out:"$build/ChatExample.dll" "$here/unity-stub/UnityEngine.cs" "$here/generated/Demo.cs" "$build/ChatWindow.cs"

if [ -n "${ZINX_DEMO_BIN:-}" ]; then
  demo="$ZINX_DEMO_BIN"
else
  echo "==> cargo build -p demo"
  (cd "$root" && cargo build -q -p demo)
  target="$(cd "$root" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  demo="$target/debug/demo"
fi
if [ ! -x "$demo" ]; then
  echo "no demo binary at $demo" >&2
  exit 1
fi

# Five free loopback ports: gate TCP, gate WebSocket, gate admin, im-1, im-2.
read -r tcp ws admin im1 im2 < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
')

conf="$(mktemp -d)"
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then
    kill "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$conf"
}
trap cleanup EXIT

# The gate closes clients silent for idle_ms: the idle test checks that
# heartbeats prevent it (the other tests' clients beat every 500 ms).
if [ -n "${ZINX_DEMO_SETTINGS:-}" ]; then
  settings="$ZINX_DEMO_SETTINGS"
  idle_ms=0 # unknown: the idle test is left out
else
  idle_ms=2000
  settings="{\"secret\": \"csharp-sdk-tests\", \"idle_timeout_ms\": $idle_ms}"
fi
cat >"$conf/dinx.json" <<EOF
{
  "gate": [{"ID": 1, "Name": "gate-1", "Type": 1, "IP": "127.0.0.1", "Port": $tcp,
            "WsPort": $ws, "WsPath": "/", "AdminPort": $admin}],
  "im": [
    {"ID": 2, "Name": "im-1", "Type": 2, "IP": "127.0.0.1", "Port": $im1},
    {"ID": 3, "Name": "im-2", "Type": 2, "IP": "127.0.0.1", "Port": $im2}
  ]
}
EOF
cp "$root/conf/route.json" "$conf/route.json"
printf '%s\n' "$settings" >"$conf/settings.json"

echo "==> starting $demo --conf $conf"
"$demo" --conf "$conf" >"$conf/demo.log" 2>&1 &
demo_pid=$!

# Ready when the gate's admin endpoint says so (its links to the im nodes
# are up). The probe runs in a subshell so that its redirections stay there.
readyz() {
  (exec 3<>"/dev/tcp/127.0.0.1/$admin" &&
    printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
    head -n 1 <&3) 2>/dev/null || true
}
ready=""
for _ in $(seq 300); do
  if ! kill -0 "$demo_pid" 2>/dev/null; then
    echo "the demo exited early:" >&2
    cat "$conf/demo.log" >&2
    exit 1
  fi
  if [[ "$(readyz)" == *" 200 "* ]]; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "the demo was not ready within 30 s:" >&2
  tail -n 50 "$conf/demo.log" >&2
  exit 1
fi

echo "==> running the tests"
status=0
ZINX_TEST_TCP="tcp://127.0.0.1:$tcp" \
ZINX_TEST_WS="ws://127.0.0.1:$ws/" \
ZINX_TEST_ADMIN="http://127.0.0.1:$admin" \
ZINX_TEST_IDLE_MS="$idle_ms" \
  mono --debug "$build/ZinxCluster.Client.Tests.exe" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "==> the demo's log (last 40 lines)"
  tail -n 40 "$conf/demo.log"
fi
exit "$status"
