#!/usr/bin/env bash
# Creates .venv-clients/ with the Python MCP clients the foreign-client tests drive (test/e2e/python-clients.test.ts):
# the official Python SDK and FastMCP, exact versions. Uses the machine's configured pip index; `--retries 0` so an
# unreachable index fails at once instead of retrying for minutes. Exits non-zero when they cannot be installed: the
# tests then skip with the reason (the marker file below says what is missing), never pass silently.
set -uo pipefail

cd "$(dirname "$0")/.."
VENV=.venv-clients
PACKAGES=(mcp==2.3.0 fastmcp==4.0.10)
MARKER="$VENV/installed.txt"

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "${PACKAGES[*]}" ]; then
  echo "python clients: ${PACKAGES[*]} already in $VENV"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "python clients: python3 is not installed" >&2
  exit 1
fi
rm -rf "$VENV"
python3 -m venv "$VENV" || { echo "python clients: python3 -m venv failed (is the venv module installed?)" >&2; exit 1; }
if ! "$VENV/bin/pip" install --retries 0 --quiet "${PACKAGES[@]}" </dev/null; then
  echo "python clients: pip could not install ${PACKAGES[*]} from the configured index" >&2
  exit 1
fi
echo "${PACKAGES[*]}" > "$MARKER"
echo "python clients: installed ${PACKAGES[*]} in $VENV"
