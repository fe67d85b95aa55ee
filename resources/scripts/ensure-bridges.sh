# shellcheck shell=bash
# Sourced (by init-ssh-and-repo.sh and terok-env.sh): starts the in-container socat bridges to
# host services that are not running yet. Liveness is checked on the pidfile's process, not
# by the socket's existence, because a dead socat leaves its socket behind — and not by
# `kill -0` alone: a bridge that died stays a zombie (state Z) while its parent (the
# container's `tail -f /dev/null`) never reaps it.

_TEROK_VAULT_SOCKET=/run/terok/vault/vault.sock

# Whether the process in pidfile $1 runs (exists and is not a zombie).
_terok_alive() {
  local pid state
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  state="$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

_terok_bridge() {
  local name="$1"
  shift
  local dir=/tmp/.terok
  local pidfile="$dir/$name.pid"
  if _terok_alive "$pidfile"; then
    return 0
  fi
  mkdir -p "$dir" 2>/dev/null || return 0
  nohup "$@" >/dev/null 2>&1 &
  echo "$!" > "$pidfile"
}

# Waits up to two seconds for the vault loopback bridge to accept connections.
_terok_wait_for_vault_bridge() {
  [[ -n "${TEROK_VAULT_LOOPBACK_PORT:-}" && -S "$_TEROK_VAULT_SOCKET" ]] || return 0
  local i
  for i in $(seq 1 40); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${TEROK_VAULT_LOOPBACK_PORT}") 2>/dev/null; then
      return 0
    fi
    [[ $i -eq 40 ]] || sleep 0.05
  done
  return 1
}

if command -v socat >/dev/null 2>&1; then
  # Socket mode: HTTP-only clients reach the per-container vault socket through 127.0.0.1.
  if [[ -n "${TEROK_VAULT_LOOPBACK_PORT:-}" && -S "$_TEROK_VAULT_SOCKET" ]]; then
    _terok_bridge vault-loopback socat \
      "TCP-LISTEN:${TEROK_VAULT_LOOPBACK_PORT},bind=127.0.0.1,reuseaddr,fork" \
      "UNIX-CONNECT:${_TEROK_VAULT_SOCKET}"
  fi
  # TCP mode: socket-only clients reach the host broker port through a local socket. A
  # restarted container still has the dead bridge's socket file: `unlink-early` replaces it.
  if [[ -n "${TEROK_TOKEN_BROKER_PORT:-}" ]]; then
    _terok_bridge vault-socket socat \
      "UNIX-LISTEN:/tmp/terok-vault.sock,fork,mode=600,unlink-early" \
      "TCP:host.containers.internal:${TEROK_TOKEN_BROKER_PORT}"
  fi
  # SSH signer: an ssh-agent socket whose connections carry the task's token first.
  if [[ -n "${TEROK_SSH_SIGNER_TOKEN:-}" && ( -n "${TEROK_SSH_SIGNER_SOCKET:-}" || -n "${TEROK_SSH_SIGNER_PORT:-}" ) ]]; then
    _terok_bridge ssh-agent socat \
      "UNIX-LISTEN:/tmp/ssh-agent.sock,fork,mode=600,unlink-early" \
      "EXEC:/usr/local/bin/ssh-agent-bridge.sh"
    # git and ssh use it right away (the clone): give socat a moment to listen.
    for _ in $(seq 1 40); do
      [[ -S /tmp/ssh-agent.sock ]] && break
      sleep 0.05
    done
  fi
  # Git gate.
  if [[ -n "${TEROK_GATE_SOCKET:-}" ]]; then
    _terok_bridge gate socat \
      "TCP-LISTEN:9418,bind=127.0.0.1,reuseaddr,fork" \
      "UNIX-CONNECT:${TEROK_GATE_SOCKET}"
  fi
fi
