#!/usr/bin/env bash
# Make sure promtool is installed for tests/test_alerts.py (`promtool check rules` and `promtool test rules`
# on deploy/alerts.yml): Debian's prometheus package carries it. apt-get update runs only when the package
# is not installable yet.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "ensure_promtool: $(promtool --version 2>&1 | head -n1)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure_promtool: promtool is missing; run as root: apt-get install -y --no-install-recommends prometheus" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends prometheus; then
  apt-get update
  apt-get install -y --no-install-recommends prometheus
fi
echo "ensure_promtool: $(promtool --version 2>&1 | head -n1)"
