# The controller image: `ctune run SPEC --backend kubernetes` (the k8s/ CronJob), on CPU.
# BASE_IMAGE: any Debian-based Python 3.10+ image.
ARG BASE_IMAGE=python:3.12-slim-bookworm
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/scratch

# The controller reads data and writes reports; the CPU build of torch keeps the image small.
ARG TORCH_VERSION=2.13.0
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu

WORKDIR /opt/cluster-tune
COPY pyproject.toml README.md ./
COPY jobs ./jobs
COPY controller ./controller
RUN pip install . && ctune --help > /dev/null

USER 1000:1000
WORKDIR /scratch
ENTRYPOINT ["ctune"]
