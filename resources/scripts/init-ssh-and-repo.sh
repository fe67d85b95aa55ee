#!/usr/bin/env bash
# Entry point of every terok task container: prepares SSH, the vault and SSH bridges, and the
# repository in /workspace, then prints ">> init complete" (the host waits for that line).
set -euo pipefail

log() { printf '>> %s\n' "$*"; }

# Unrestricted tasks let Claude Code skip its permission prompts (managed settings win over
# anything in the workspace).
if [[ "${TEROK_UNRESTRICTED:-}" == "1" && -d /etc/claude-code && -w /etc/claude-code ]]; then
  printf '%s\n' '{"permissions":{"defaultMode":"bypassPermissions"}}' \
    > /etc/claude-code/managed-settings.json
fi

# Bridges to host services (vault loopback, SSH signer, gate).
if [[ -r /usr/local/bin/ensure-bridges.sh ]]; then
  # shellcheck source=ensure-bridges.sh
  source /usr/local/bin/ensure-bridges.sh
  _terok_wait_for_vault_bridge || log "warning: the vault bridge on 127.0.0.1:${TEROK_VAULT_LOOPBACK_PORT:-} is not answering"
fi

if [[ -n "${SSH_AUTH_SOCK:-}" ]]; then
  mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
  if [[ ! -f "$HOME/.ssh/config" ]]; then
    printf 'Host *\n  StrictHostKeyChecking accept-new\n' > "$HOME/.ssh/config"
    chmod 600 "$HOME/.ssh/config"
  fi
  if [[ "${CODE_REPO:-}" == *github.com* ]]; then
    ssh-keyscan -t ed25519 github.com >> "$HOME/.ssh/known_hosts" 2>/dev/null || true
  fi
fi

workspace="${REPO_ROOT:-/workspace}"

origin_matches() {
  local origin
  origin="$(git -C "$workspace" remote get-url origin 2>/dev/null || true)"
  [[ -n "$origin" && ( "$origin" == "${CODE_REPO:-}" || "$origin" == "${CLONE_FROM:-}" ) ]]
}

fresh_clone() {
  if [[ -n "$(ls -A "$workspace" 2>/dev/null)" ]]; then
    log "error: $workspace is not empty and is not a clone of ${CODE_REPO}"
    exit 128
  fi
  local source="${CLONE_FROM:-$CODE_REPO}"
  log "cloning ${CODE_REPO}${GIT_BRANCH:+ (branch $GIT_BRANCH)}"
  if [[ -n "${GIT_BRANCH:-}" ]]; then
    if ! git clone --recurse-submodules -b "$GIT_BRANCH" "$source" "$workspace"; then
      if git ls-remote --exit-code --heads "$source" "$GIT_BRANCH" >/dev/null 2>&1; then
        log "error: cloning branch $GIT_BRANCH failed"
        exit 128
      fi
      log "branch $GIT_BRANCH does not exist upstream; starting it from the default branch"
      git clone --recurse-submodules "$source" "$workspace"
      git -C "$workspace" checkout -b "$GIT_BRANCH"
    fi
  else
    git clone --recurse-submodules "$source" "$workspace"
  fi
  if [[ -n "${CLONE_FROM:-}" || "$CODE_REPO" == file://* ]]; then
    git -C "$workspace" remote set-url origin "$CODE_REPO"
  fi
}

if [[ -n "${CODE_REPO:-}" ]]; then
  git config --global --add safe.directory "$workspace"
  if [[ -d "$workspace/.git" ]] && ! origin_matches; then
    log "the cached clone in $workspace points elsewhere; starting over"
    find "$workspace" -mindepth 1 -delete
  fi
  if [[ -d "$workspace/.git" ]]; then
    if [[ -f "$workspace/.new-task-marker" ]]; then
      log "new task: updating the seeded clone to the latest ${GIT_BRANCH:-default branch}"
      rm -f "$workspace/.new-task-marker"
      git -C "$workspace" fetch --prune origin
      ref="origin/${GIT_BRANCH:-HEAD}"
      git -C "$workspace" reset --hard "$ref" 2>/dev/null || git -C "$workspace" reset --hard origin/HEAD
    else
      log "restarted task: fetching without touching your work"
      git -C "$workspace" fetch --prune origin || log "warning: fetch failed"
      case "${GIT_RESET_MODE:-none}" in
        hard) git -C "$workspace" reset --hard "@{upstream}" ;;
        soft) git -C "$workspace" reset --soft "@{upstream}" ;;
        *) ;;
      esac
    fi
  else
    fresh_clone
  fi
  if [[ -n "${EXTERNAL_REMOTE_URL:-}" ]]; then
    git -C "$workspace" remote add external "$EXTERNAL_REMOTE_URL" 2>/dev/null \
      || git -C "$workspace" remote set-url external "$EXTERNAL_REMOTE_URL"
  fi
fi

versions=("git $(git --version | awk '{print $3}')")
command -v node >/dev/null 2>&1 && versions+=("node $(node --version)")
command -v python3 >/dev/null 2>&1 && versions+=("python $(python3 --version | awk '{print $2}')")
log "toolchain: ${versions[*]}"
echo ">> init complete"

# As the image's default command with a terminal attached, hand over to a login shell.
if [[ $# -eq 0 && -t 0 ]]; then
  exec bash -l
fi
