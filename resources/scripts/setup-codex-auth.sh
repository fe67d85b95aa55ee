#!/usr/bin/env bash
# Runs `codex login` in the auth container. Codex waits for the OAuth callback on
# 127.0.0.1:1455 inside the container; podman publishes the container's port 1455 on the host's
# loopback, so forward connections arriving on the container's address to it.
set -euo pipefail
address="$(hostname -I 2>/dev/null | awk '{print $1}')"
if [[ -n "$address" ]]; then
  socat "TCP-LISTEN:1455,bind=${address},reuseaddr,fork" TCP:127.0.0.1:1455 &
fi
exec codex login "$@"
