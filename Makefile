.PHONY: install run test lint bench

install:
	bash scripts/bootstrap.sh dev

run:
	bash scripts/up.sh

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy src tests bench

# Every benchmark, one table; `make bench BENCH_ARGS=--quick` for a few minutes' version.
bench:
	.venv/bin/python bench/run.py $(BENCH_ARGS)
