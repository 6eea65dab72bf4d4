# listserve: one image for the API (`listserve serve`, the default) and the training worker
# (`listserve worker`). Multi-stage: the build stage creates a virtualenv, the final stage copies
# only that venv onto a fresh slim base, so pip's caches and any build tooling never ship.
#
#   docker build -t listserve:cpu .                                  # CPU torch (default)
#   docker build -t listserve:cuda --build-arg TORCH_VARIANT=cu128 .   # CUDA torch for GPU workers
#
# TORCH_VARIANT names a download.pytorch.org wheel index (cpu, cu126, cu128, ...) that hosts
# torch 2.13.0; the CUDA wheels bundle their CUDA runtime, the host needs only the NVIDIA driver
# and the NVIDIA container toolkit.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VARIANT=cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
# torch first, in its own layer: it is the big one and changes only with this pin.
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "torch==2.13.0" \
        --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY list_core ./list_core
COPY service ./service
COPY worker ./worker
# Every dependency ships wheels for this platform, so no compiler is needed even here.
RUN pip install --no-cache-dir . \
    && python -c "import list_core, service, worker.celery_app"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/data/hf \
    LISTSERVE_HOST=0.0.0.0 \
    LISTSERVE_PORT=8000 \
    LISTSERVE_STORE=/data/adapters \
    LISTSERVE_DATABASE_URL=sqlite:////data/listserve.db
# jemalloc for the API process (LISTSERVE_ALLOCATOR=auto finds it; see service/process/allocator.py).
# Unpinned on purpose: the slim base's Debian release fixes the version, security updates apply.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 listserve \
    && useradd --system --uid 10001 --gid listserve --home-dir /app \
        --shell /usr/sbin/nologin listserve \
    && mkdir -p /app /data/adapters /data/hf \
    && chown -R listserve:listserve /app /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
# /health answers as soon as the process serves HTTP (/ready waits for the backbone). The
# worker has no HTTP port: docker-compose.yml gives it a `celery inspect ping` check instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('LISTSERVE_PORT', '8000'), timeout=4)"]
CMD ["listserve", "serve"]
