#!/usr/bin/env bash
# L0 build step (as root): makes sure user `dev` is uid/gid 1000 with home /home/dev and
# passwordless sudo, taking over an existing uid-1000 user (ubuntu:24.04 ships one).
set -euo pipefail

existing_user="$(getent passwd 1000 | cut -d: -f1 || true)"
existing_group="$(getent group 1000 | cut -d: -f1 || true)"

if [[ -n "$existing_user" && "$existing_user" != dev ]]; then
  usermod -l dev -d /home/dev -m "$existing_user"
  usermod -p '!' dev
  for f in /etc/subuid /etc/subgid; do
    [[ -f "$f" ]] && sed -i "s/^${existing_user}:/dev:/" "$f"
  done
fi
if [[ -n "$existing_group" && "$existing_group" != dev ]]; then
  groupmod -n dev "$existing_group"
fi
getent group dev >/dev/null || groupadd -g 1000 dev
if ! getent passwd dev >/dev/null; then
  useradd -m -d /home/dev -u 1000 -g dev -s /bin/bash dev
fi
[[ "$(id -u dev)" == 1000 ]] || usermod -u 1000 dev
[[ "$(getent group dev | cut -d: -f3)" == 1000 ]] || groupmod -g 1000 dev
usermod -s /bin/bash -g dev dev

printf 'dev ALL=(ALL) NOPASSWD:ALL\n' > /etc/sudoers.d/dev
chmod 0440 /etc/sudoers.d/dev
visudo -cf /etc/sudoers.d/dev >/dev/null

install -d -m 0777 /workspace
install -d -o dev -g dev -m 0755 /home/dev
install -d -o dev -g dev -m 0700 /home/dev/.ssh
install -d -o dev -g dev -m 0755 /home/dev/.terok
