# The two commands of the README. Each one sets up from scratch if needed, then runs.
.PHONY: demo test setup bench lint docs

demo:  ## set up, then train the default Fashion-MNIST model (flow matching) for 10 minutes, sample it
	bash scripts/setup.sh
	.venv/bin/difusion train fashion-mnist

test:  ## set up with test dependencies, then run the test suite
	bash scripts/setup.sh --test
	.venv/bin/python -m pytest

setup:
	bash scripts/setup.sh --test

bench:  ## the benchmark suite: loop vs bare training throughput, sampler overhead, peak memory
	.venv/bin/python benchmarks/run.py

docs:  ## build the docs site (MkDocs + Material, English and Spanish, KaTeX offline) into build/site
	@[ -x .venv/bin/mkdocs ] || bash scripts/setup.sh --docs
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict

lint:
	.venv/bin/ruff check src tests benchmarks && .venv/bin/ruff format --check src tests benchmarks
