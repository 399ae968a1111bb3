.PHONY: install run test lint bench settings-table

install:
	bash scripts/bootstrap.sh dev

run:
	bash scripts/up.sh

test:
	bash scripts/test.sh

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
