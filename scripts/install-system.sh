#!/usr/bin/env bash
# System packages cet uses from Debian: Python's documentation (the default docs source), bubblewrap
# (the execution sandbox) and chromium (the dashboard's browser test renders the page headless). Idempotent;
# skips quietly what is already there; never fails the set-up when it cannot install (no root, no apt): the
# docs source then reports the missing path clearly, the sandbox runs in its weak mode, saying so in every
# result, and the browser test is skipped.
set -u
need=()
[ -d /usr/share/doc/python3.11/html/_sources ] || need+=(python3.11-doc)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "cet set-up: cannot install ${need[*]} (needs root and apt-get); see README (system packages)" >&2
  exit 0
fi
echo "cet set-up: installing ${need[*]} from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 || true;
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || echo "cet set-up: apt-get install ${need[*]} failed" >&2; }
exit 0
