.PHONY: install run test test-fast lint bench settings-table

install:
	bash scripts/bootstrap.sh dev

run:
	bash scripts/up.sh

test:
	bash scripts/test.sh

# The development loop: lint, types and every test but the kinds that take minutes (fault
# injection, the Valkey Cluster, load, the real Claude Code CLI, single slow tests), with a
# sixth of the fuzz inputs. `make test` and .ci/run still run everything.
test-fast: lint
	HOOKAGENT_TEST_CHROMIUM="$${HOOKAGENT_TEST_CHROMIUM:-$$(command -v chromium)}" HYPOTHESIS_PROFILE=fast \
	  .venv/bin/pytest -q -m "not faults and not cluster and not load and not e2e and not slow"

lint:
	.venv/bin/ruff check src tests bench scripts
	.venv/bin/ruff format --check src tests bench scripts
	.venv/bin/mypy src tests bench scripts
	.venv/bin/python scripts/settings_table.py --check

# README.md's settings table, regenerated from the Field(description=...) of each setting.
settings-table:
	.venv/bin/python scripts/settings_table.py --write

# Every benchmark, one table; `make bench BENCH_ARGS=--quick` for a few minutes' version.
bench:
	.venv/bin/python bench/run.py $(BENCH_ARGS)
