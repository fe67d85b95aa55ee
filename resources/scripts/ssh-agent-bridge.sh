#!/usr/bin/env bash
# One ssh-agent connection: sends the task's token (4-byte big-endian length, then the token)
# to the host's SSH signer, then relays the agent protocol both ways.
set -euo pipefail

token="${TEROK_SSH_SIGNER_TOKEN:?TEROK_SSH_SIGNER_TOKEN is not set}"
if [[ -n "${TEROK_SSH_SIGNER_SOCKET:-}" ]]; then
  target="UNIX-CONNECT:${TEROK_SSH_SIGNER_SOCKET}"
elif [[ "${TEROK_SSH_SIGNER_PORT:-}" =~ ^[0-9]+$ ]]; then
  target="TCP:host.containers.internal:${TEROK_SSH_SIGNER_PORT}"
else
  echo "ssh-agent-bridge: TEROK_SSH_SIGNER_SOCKET or a numeric TEROK_SSH_SIGNER_PORT is required" >&2
  exit 1
fi

length=${#token}
header=$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' \
  $(((length >> 24) & 255)) $(((length >> 16) & 255)) $(((length >> 8) & 255)) $((length & 255)))

{ printf '%b' "$header"; printf '%s' "$token"; cat; } | socat - "$target"
