# One image for the recreate API, the Dask scheduler and the Dask workers
# (the Helm chart in helm/recreate runs `recreate serve`, `dask scheduler`
# and `recreate worker` from it).
#
#   docker build -t ghcr.io/lsst-dm/recreate:0.1.0 .
#
# Dependencies are pinned by constraints.txt at the repository root: every
# package at the version the project is tested with, written from the
# project's virtual environment by
#
#   .venv/bin/pip freeze --exclude-editable > constraints.txt
#
# (a constraint only pins: packages the project does not need, such as the
# test tools, are not installed).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# Build stage: a virtual environment holding the project and its pinned
# dependencies. Compilers stay here.
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY recreate ./recreate
COPY cache ./cache
COPY workers ./workers
RUN pip install --constraint constraints.txt .
# Compile every numba kernel once, here, so that no pod pays it (25 s of
# a fresh install's first recreation). The CPU name "generic" makes the
# cache valid on any x86-64 node, not only on the build machine's CPU
# model (numba keys its cache by CPU); it costs no measurable speed.
ENV NUMBA_CACHE_DIR=/opt/numba-cache \
    NUMBA_CPU_NAME=generic
RUN python -c "from recreate.pipeline.warmup import warm_up; warm_up()"

# Runtime stage: the virtual environment on a slim Python, run as a
# non-root user with no compilers.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --gid 1000 recreate \
    && useradd --uid 1000 --gid 1000 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin recreate
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/numba-cache /opt/numba-cache
# The chart mounts the root filesystem read-only and an emptyDir at /tmp:
# every cache (numba, astropy, Dask's local directory) goes there. numba
# only uses a cache directory it can write to, so `recreate` copies the
# image's compiled kernels (RECREATE_NUMBA_CACHE_SEED) into /tmp/numba
# when it starts (workers/numba_cache.py): a new pod compiles nothing.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    NUMBA_CACHE_DIR=/tmp/numba \
    NUMBA_CPU_NAME=generic \
    RECREATE_NUMBA_CACHE_SEED=/opt/numba-cache \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 1000:1000
# API 8080; Dask scheduler 8786 (comm) and 8787 (HTTP: /health, /metrics).
EXPOSE 8080 8786 8787
ENTRYPOINT ["recreate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
