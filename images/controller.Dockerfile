# The controller image: `ctune run SPEC --backend kubernetes` (the k8s/ CronJob), on CPU.
# BASE_IMAGE: any Debian-based Python 3.10+ image.
ARG BASE_IMAGE=python:3.12-slim-bookworm
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/scratch

# The controller plans, submits Jobs and reports: it installs no torch (the jobs' extra is
# not installed; import-linter keeps torch out of the controller's imports).
WORKDIR /opt/cluster-tune
COPY pyproject.toml README.md constraints.txt ./
COPY jobs ./jobs
COPY controller ./controller
RUN pip install -c constraints.txt . && ctune --help > /dev/null

USER 1000:1000
WORKDIR /scratch
ENTRYPOINT ["ctune"]
