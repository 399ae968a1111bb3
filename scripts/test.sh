#!/usr/bin/env bash
# One command: install everything the suite needs, lint, type-check, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev

# bubblewrap for the sandbox tests; installed only where we can (root with apt-get).
if ! command -v bwrap >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq bubblewrap
fi

# Chromium for the web UI tests (tests/ui), driven by Playwright: the distribution's
# browser, never `playwright install` (that downloads its own).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq chromium
fi
if command -v chromium >/dev/null; then
  export HOOKAGENT_TEST_CHROMIUM="${HOOKAGENT_TEST_CHROMIUM:-$(command -v chromium)}"
fi

# The real Claude Code CLI for the end-to-end test, cached outside the checkout.
claude_version=2.1.197
npm_dir="${XDG_CACHE_HOME:-$HOME/.cache}/hookagent/npm"
if [ ! -x "$npm_dir/node_modules/.bin/claude" ] || \
   ! grep -q "\"version\": \"$claude_version\"" "$npm_dir/node_modules/@anthropic-ai/claude-code/package.json" 2>/dev/null; then
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$claude_version"
fi
export HOOKAGENT_TEST_CLAUDE_BIN="$npm_dir/node_modules/.bin/claude"

# The real Codex and Gemini CLIs for their end-to-end tests, in a sibling prefix (so
# installing them never rewrites Claude Code's while a test runs it).
codex_version=0.169.1
gemini_version=0.61.0
agents_dir="${XDG_CACHE_HOME:-$HOME/.cache}/hookagent/npm-agents"
if ! grep -q "\"version\": \"$codex_version\"" "$agents_dir/node_modules/@openai/codex/package.json" 2>/dev/null || \
   ! grep -q "\"version\": \"$gemini_version\"" "$agents_dir/node_modules/@google/gemini-cli/package.json" 2>/dev/null; then
  mkdir -p "$agents_dir"
  npm install --prefix "$agents_dir" --no-audit --no-fund --loglevel=error \
    "@openai/codex@$codex_version" "@google/gemini-cli@$gemini_version"
fi
export HOOKAGENT_TEST_CODEX_BIN="$agents_dir/node_modules/.bin/codex"
export HOOKAGENT_TEST_GEMINI_BIN="$agents_dir/node_modules/.bin/gemini"

.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy src tests bench
.venv/bin/pytest "$@"
