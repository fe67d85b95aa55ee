# shellcheck shell=bash
# The task environment, sourced by login shells, interactive shells (bash.bashrc) and
# non-interactive bash (BASH_ENV). Defines functions, so it runs once per shell: the guard
# variable is deliberately not exported.
if [[ -n "${_terok_env_sourced:-}" ]]; then
  return 0
fi
_terok_env_sourced=1

# A krun guest: its first process (root) only starts sshd — the task's shells are dev's SSH
# sessions, which start without the task's environment and load what that process saved.
if [[ "${TEROK_CONTAINER_RUNTIME:-}" == krun && $EUID -eq 0 ]]; then
  return 0
fi
if [[ -z "${TASK_ID:-}" && -r /run/terok-guest.env ]]; then
  # shellcheck source=/dev/null
  source /run/terok-guest.env
fi

_terok_path_prepend() {
  case ":$PATH:" in
    *":$1:"*) ;;
    *) PATH="$1:$PATH" ;;
  esac
}
_terok_path_prepend /home/dev/.opencode/bin
_terok_path_prepend /home/dev/.local/bin
_terok_path_prepend /home/dev/.npm-packages/bin
export PATH

if [[ -r /usr/local/share/terok/terok-env-git-identity.sh ]]; then
  # shellcheck source=terok-env-git-identity.sh
  source /usr/local/share/terok/terok-env-git-identity.sh
fi

# gh and glab act for the human, whoever calls them.
gh() { (_terok_apply_git_identity "${HUMAN_GIT_NAME:-Nobody}" "${HUMAN_GIT_EMAIL:-nobody@localhost}"; command gh "$@"); }
glab() { (_terok_apply_git_identity "${HUMAN_GIT_NAME:-Nobody}" "${HUMAN_GIT_EMAIL:-nobody@localhost}"; command glab "$@"); }

# The phantom tokens of this run of the task: a stopped task gets fresh ones when it starts
# again, and the host rewrites this file then (the container's own env keeps the first ones).
if [[ -r /home/dev/.terok/vault.env ]]; then
  set -a
  # shellcheck source=/dev/null
  source /home/dev/.terok/vault.env
  set +a
fi

# Restart any bridge that died.
if [[ -r /usr/local/bin/ensure-bridges.sh ]]; then
  # shellcheck source=ensure-bridges.sh
  source /usr/local/bin/ensure-bridges.sh
fi
if [[ -S /tmp/ssh-agent.sock ]]; then
  export SSH_AUTH_SOCK=/tmp/ssh-agent.sock
fi

# Per-task agent wrappers (claude, codex, …), written by the host into the agent-config mount.
if [[ -r /home/dev/.terok/terok-executor.sh ]]; then
  # shellcheck source=/dev/null
  source /home/dev/.terok/terok-executor.sh
fi
