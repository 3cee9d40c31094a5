#!/usr/bin/env bash
# Install the real Claude Code CLI that the tests and `make demo` drive, offline,
# against the project's fake Messages API. Pinned: its request shapes (the
# `?beta=true` query, streaming only, the mid-conversation system message), hook
# formats and MCP behaviour are what docs/claude-code.md describes for this version.
#
# Into .tools/claude-code (never global); skipped when that version is already there.
# Needs node and npm (Debian's nodejs/npm are installed when missing, as root).
# Under CI=true a CLI that cannot be installed is an error, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.1.197
PREFIX=.tools/claude-code
BIN="$PREFIX/node_modules/.bin/claude"

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^$VERSION "; then
  exit 0
fi

fail() {
  echo "cannot install Claude Code $VERSION: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "tests that need the real claude CLI will be skipped (never under CI=true)" >&2
  exit 0
}

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm \
      || fail "apt-get could not install nodejs and npm"
  else
    fail "npm is missing (install Node.js and npm)"
  fi
fi

echo "installing @anthropic-ai/claude-code@$VERSION into $PREFIX"
mkdir -p "$PREFIX"
# The package's postinstall links the native binary of this platform (an optional
# dependency): optional dependencies must not be omitted.
npm install --prefix "$PREFIX" --no-fund --no-audit --loglevel=error \
  "@anthropic-ai/claude-code@$VERSION" >/dev/null || fail "npm install failed"
"$BIN" --version >/dev/null 2>&1 || fail "$BIN does not run"
