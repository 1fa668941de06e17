# Cascade's services in one image (the role is the command: `cascade serve query`, ...).
#   CPU (slim, the default):  docker build -t cascade:0.1.0 .
#   GPU reranker:             docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 \
#                                          -t cascade:0.1.0-cuda .
# The CUDA wheels carry their own CUDA libraries; the node's NVIDIA container runtime brings the driver.
# Both are what `make image` / `make image-cuda` build and what infra/k8s refers to.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# torch first, from the chosen wheel index (CPU-only wheels are a fifth of the size); pinned as in pyproject.toml
RUN python -m venv /opt/cascade \
 && /opt/cascade/bin/pip install --index-url "${TORCH_INDEX}" "torch==2.15.0"
COPY pyproject.toml README.md ./
COPY contracts contracts
COPY services services
COPY runtime runtime
COPY sdk sdk
COPY infra infra
COPY evaluation evaluation
RUN /opt/cascade/bin/pip install .

FROM ${PYTHON_IMAGE}
RUN useradd --create-home --uid 10001 cascade && mkdir -p /data && chown cascade /data
COPY --from=build /opt/cascade /opt/cascade
COPY models /app/models
ENV PATH=/opt/cascade/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    CASCADE_MODELS_DIR=/app/models \
    CASCADE_STORE_PATH=/data/store \
    CASCADE_METRICS_PORT=9400 \
    CASCADE_LOG_FORMAT=json
WORKDIR /app
USER 10001
EXPOSE 9400
STOPSIGNAL SIGTERM
ENTRYPOINT ["cascade"]
CMD ["serve", "ingest", "query", "rerank"]
