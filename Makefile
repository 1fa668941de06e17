# Cascade: `make run` (the embedded demo) and `make test` (lint, types, the whole suite on a real Kafka).
VENV ?= $(HOME)/.cache/cascade/venv
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export CASCADE_VENV := $(VENV)

.PHONY: venv test lint kafka asyncapi docs run bench-ingest image image-cuda

venv:
	@scripts/ensure_venv.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

kafka: venv
	$(PY) -m cascade.runtime.cli kafka

run: venv
	$(PY) -m scripts.demo.run

asyncapi: venv
	$(PY) -m scripts.asyncapi > contracts/asyncapi.json

docs: venv
	$(PY) -m scripts.docs_configuration
	$(PY) -m scripts.docs_topics
	$(PY) -m scripts.docs_measurements

image:
	docker build -t cascade:$(VERSION) .

image-cuda:
	docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t cascade:$(VERSION)-cuda .
