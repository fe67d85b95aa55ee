#!/usr/bin/env bash
# Installs the latest GitLab CLI release package (deb or rpm) from gitlab.com, checked against
# the release's published SHA-256 checksums. Used where the distribution has no glab package.
set -euo pipefail
family="${1:?usage: install-glab-release.sh deb|rpm}"
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) echo "glab: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
api="https://gitlab.com/api/v4/projects/gitlab-org%2Fcli/releases/permalink/latest"
release="$(curl -fsSL "$api")"
version="$(jq -r '.tag_name' <<<"$release" | sed 's/^v//')"
package="glab_${version}_linux_${arch}.${family}"
base="https://gitlab.com/gitlab-org/cli/-/releases/v${version}/downloads"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -fsSL -o "$work/$package" "$base/$package"
curl -fsSL -o "$work/checksums.txt" "$base/checksums.txt"
(cd "$work" && grep " ${package}\$" checksums.txt | sha256sum -c -)
if [[ "$family" == deb ]]; then
  apt-get install -y "$work/$package"
else
  dnf install -y "$work/$package"
fi
