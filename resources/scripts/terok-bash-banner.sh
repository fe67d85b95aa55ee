# shellcheck shell=bash
# Shown once per interactive shell: a pointer to `hilfe`.
if [[ $- == *i* && -z "${_terok_banner_shown:-}" ]]; then
  _terok_banner_shown=1
  printf 'terok task container — type \033[1mhilfe\033[0m for the agents and tools here.\n'
fi
