# Shortcuts; each runs inside the project venv that dev.py creates on first use.
.PHONY: demo test bench lint

demo:
	python3 dev.py demo

test:
	python3 dev.py test

bench:
	python3 dev.py bench

lint:
	python3 dev.py run --help >/dev/null
	.venv/bin/ruff check .
	.venv/bin/mypy router streams
