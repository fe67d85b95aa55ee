# shellcheck shell=bash
# Git identity for commits made inside the task. _terok_apply_git_identity NAME EMAIL sets the
# GIT_AUTHOR_* and GIT_COMMITTER_* variables from the agent's identity and the human's
# (HUMAN_GIT_NAME / HUMAN_GIT_EMAIL) according to TEROK_GIT_AUTHORSHIP:
#   agent-human (default): authored by the agent, committed by the human
#   human-agent: authored by the human, committed by the agent
#   agent / human: both are that identity

_terok_apply_git_identity() {
  local agent_name="${1:-AI Agent}" agent_email="${2:-ai@localhost}"
  local human_name="${HUMAN_GIT_NAME:-Nobody}" human_email="${HUMAN_GIT_EMAIL:-nobody@localhost}"
  local author_name author_email committer_name committer_email
  case "${TEROK_GIT_AUTHORSHIP:-agent-human}" in
    human-agent)
      author_name="$human_name" author_email="$human_email"
      committer_name="$agent_name" committer_email="$agent_email" ;;
    agent)
      author_name="$agent_name" author_email="$agent_email"
      committer_name="$agent_name" committer_email="$agent_email" ;;
    human)
      author_name="$human_name" author_email="$human_email"
      committer_name="$human_name" committer_email="$human_email" ;;
    *)
      author_name="$agent_name" author_email="$agent_email"
      committer_name="$human_name" committer_email="$human_email" ;;
  esac
  export GIT_AUTHOR_NAME="$author_name" GIT_AUTHOR_EMAIL="$author_email"
  export GIT_COMMITTER_NAME="$committer_name" GIT_COMMITTER_EMAIL="$committer_email"
}
