#!/usr/bin/env bash
# Make sure Debian's chromium and chromium-driver are installed for the admin browser test
# (tests/test_admin_browser.py drives /usr/bin/chromium through /usr/bin/chromedriver; nothing
# is downloaded at test time). apt-get update runs only when the packages are not installable yet.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "ensure_browser: chromium and chromedriver are installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure_browser: chromium is missing; run as root: apt-get install -y chromium chromium-driver" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends chromium chromium-driver; then
  apt-get update
  apt-get install -y --no-install-recommends chromium chromium-driver
fi
echo "ensure_browser: $(/usr/bin/chromium --version)"
