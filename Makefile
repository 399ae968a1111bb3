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

bench:
	.venv/bin/python bench/ingest.py
	.venv/bin/python bench/search.py
	.venv/bin/python bench/pages.py
