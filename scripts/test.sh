#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (PostgreSQL,
# Node.js and tmux, for the tests in real terminals, and Chromium, for the HTML report,
# from Debian's packages when missing, the buf linter from npm, the dev extra from PyPI),
# then runs pytest, which also runs ruff, mypy, buf lint and the generated-code check.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "please install: $* (Debian packages)" >&2
    return 1
  fi
}

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql postgresql-contrib)
command -v npm >/dev/null || need+=(nodejs npm)
command -v tmux >/dev/null || need+=(tmux)
command -v ip >/dev/null || need+=(iproute2)  # tests/test_netns.py: network namespaces
command -v chromium >/dev/null || need+=(chromium)  # tests/test_html_report_browser.py
command -v prometheus >/dev/null || need+=(prometheus)  # tests/test_prometheus.py: scrapes
command -v fusermount3 >/dev/null || need+=(fuse3)  # tests/test_readonly_store.py (libfuse)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}…"
  apt_install "${need[@]}"
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q -e '.[dev]'
npm ci --no-audit --no-fund --loglevel=error
exec python3 -m pytest "$@"
