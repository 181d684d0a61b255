#!/usr/bin/env bash
# The built-in demo: a gateway with a generated dev certificate and streamer key, a demo camera
# (GStreamer RTSP server + HTTP snapshots) and a demo agent in front of it. Prints the gateway's
# rtsp:// URLs and runs until Ctrl-C. State (certificate, keys) lives in $CAMTUNNEL_STATE.
set -euo pipefail

build=${1:-build/release}
top=$(cd "$(dirname "$0")/.." && pwd)
case "$build" in /*) ;; *) build="$top/$build" ;; esac
state=${CAMTUNNEL_STATE:-$top/state/demo}
agent_port=${CAMTUNNEL_AGENT_PORT:-8443}
frontend_port=${CAMTUNNEL_FRONTEND_PORT:-8554}
admin_port=${CAMTUNNEL_ADMIN_PORT:-9310}
rtsp_port=${CAMTUNNEL_CAMERA_RTSP_PORT:-8555}
http_port=${CAMTUNNEL_CAMERA_HTTP_PORT:-8556}
agent_id=demo-cam
gateway="$build/gateway/camtunnel-gateway"
agent="$build/agent/camtunnel-agent"

for port in "$agent_port" "$frontend_port" "$admin_port" "$rtsp_port" "$http_port"; do
  if ss -Htln "sport = :$port" | grep -q .; then
    echo "demo: port $port is in use; free it or set CAMTUNNEL_*_PORT (see deploy/demo.sh)" >&2
    exit 1
  fi
done

mkdir -p "$state"
chmod 700 "$state"
if [ ! -f "$state/gateway.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -keyout "$state/gateway.key" -out "$state/gateway.crt" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
fi
if [ ! -f "$state/streamer.keys" ]; then
  (umask 077 && "$gateway" new-streamer-key k1 > "$state/streamer.keys")
fi
# The key a manager would hand the agent: derived from the streamer key, valid 30 days.
"$gateway" derive-key --streamer_keys="$state/streamer.keys" --agent="$agent_id" > "$state/agent.cred"
key_ref=$(sed -n 's/^key_ref=//p' "$state/agent.cred")
(umask 077 && sed -n 's/^key=//p' "$state/agent.cred" > "$state/agent.key")
rm -f "$state/agent.cred"
[ -f "$state/snapshot.jpg" ] || ffmpeg -v error -f lavfi -i testsrc=size=320x240 -frames:v 1 \
  "$state/snapshot.jpg"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

wait_line() {  # file, pattern, seconds
  for _ in $(seq 1 $(($3 * 10))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

# Each component in a session of its own (setsid): a terminal's Ctrl-C reaches only this script,
# whose trap stops them in order, instead of racing it to their own exits.
setsid /usr/bin/python3 "$top/tests/e2e/camera.py" --rtsp-port "$rtsp_port" --http-port "$http_port" \
  --tcp-only --snapshot "$state/snapshot.jpg" > "$state/camera.log" 2>&1 &
pids+=($!)
setsid "$gateway" --agent_tls_listen="127.0.0.1:$agent_port" --cert="$state/gateway.crt" \
  --key="$state/gateway.key" --streamer_keys="$state/streamer.keys" \
  --frontend_listen="127.0.0.1:$frontend_port,[::1]:$frontend_port" \
  --admin_listen="127.0.0.1:$admin_port" > "$state/gateway.out" 2> "$state/gateway.log" &
pids+=($!)
wait_line "$state/camera.log" "^ready" 20
wait_line "$state/gateway.out" "ready" 10
setsid "$agent" --gateway "https://localhost:$agent_port" --agent_id "$agent_id" --key_ref "$key_ref" \
  --key_file "$state/agent.key" --ca_file "$state/gateway.crt" \
  --service "rtsp=127.0.0.1:$rtsp_port" --service "http=127.0.0.1:$http_port" \
  2> "$state/agent.log" &
pids+=($!)
wait_line "$state/agent.log" "connected" 15

cat <<EOT
camtunnel demo is running (logs in $state). Camera '$agent_id' is reachable through the gateway:

rtsp://127.0.0.1:$frontend_port/$agent_id/stream1

  host form:   rtsp://$agent_id.localhost:$frontend_port/stream1
  snapshot:    http://127.0.0.1:$frontend_port/$agent_id/snapshot.jpg
  metrics:     http://127.0.0.1:$admin_port/metrics
  try:         ffprobe -rtsp_transport tcp rtsp://127.0.0.1:$frontend_port/$agent_id/stream1

Ctrl-C stops everything.
EOT
wait -n "${pids[@]}"
echo "demo: a component exited; see the logs in $state" >&2
exit 1
