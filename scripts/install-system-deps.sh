#!/usr/bin/env bash
# Install the system tools the test suite needs, only when they are missing:
#   jq (reads every line the bridge writes), OpenSSH server and client (the SSH
#   transport is tested against a real sshd on 127.0.0.1), systemd-analyze
#   (unit files are checked with it; systemd itself is never started), flock(1),
#   tmux and unshare/ip (the interactive Claude Code channel test runs the CLI
#   under tmux in its own network namespace).
# Under CI=true a tool that cannot be installed is an error, never a skip.
set -euo pipefail

declare -A pkg_for=(
  [jq]=jq
  [sshd]=openssh-server
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [systemd-analyze]=systemd
  [flock]=util-linux
  [tmux]=tmux
  [unshare]=util-linux
  [ip]=iproute2
)

have() {
  case "$1" in
    sshd) [ -x /usr/sbin/sshd ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for tool in "${!pkg_for[@]}"; do
  have "$tool" || missing+=("${pkg_for[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

# shellcheck disable=SC2207
pkgs=($(printf '%s\n' "${missing[@]}" | sort -u))
echo "installing system packages: ${pkgs[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  # The package scripts must not start services on this machine (sshd, systemd units).
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
else
  echo "cannot install ${pkgs[*]}: not root and no passwordless sudo" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "tests that need them will be skipped (never under CI=true)" >&2
fi
