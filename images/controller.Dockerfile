# The controller image: `ctune run SPEC --backend kubernetes` (the k8s/ CronJob), on CPU.
# BASE_IMAGE: any Debian-based image with Python 3.10+ and its venv module.
ARG BASE_IMAGE=python:3.12-slim-bookworm
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/scratch

# The controller plans, submits Jobs and reports: it installs no torch, scikit-learn, SciPy or
# matplotlib (the jobs' extra is not installed; import-linter keeps them out of its imports).
WORKDIR /opt/cluster-tune
COPY lock/controller.txt lock/
# The dependencies from the lock, hash-checked (a layer that changes only with
# lock/controller.txt), then pip leaves the image: the code is not pip-installed but found
# through a .pth file, so its layer is the code alone, compiled.
# What the controller never runs is left out after pip check: the Kubernetes client's asyncio
# copy (it uses the synchronous one), onnxruntime's quantization, transformers and tools packages
# (it only runs graphs), the hub's Xet transfer library (it never downloads weights), and
# botocore's API models of every AWS service but S3 and the credential services (STS, SSO):
# under 400 MB with onnxruntime in (docs/kubernetes.md, Images).
RUN python3 -m venv /opt/venv \
    && pip install --require-hashes --no-deps -r lock/controller.txt && pip check \
    && pip uninstall -y -q setuptools pip \
    && SITE="$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf "$SITE"/kubernetes/aio "$SITE"/onnxruntime/quantization "$SITE"/onnxruntime/transformers "$SITE"/onnxruntime/tools \
       "$SITE"/onnxruntime/datasets "$SITE"/hf_xet \
    && find "$SITE"/botocore/data -mindepth 1 -maxdepth 1 -type d ! -name s3 ! -name sts ! -name sso \
       ! -name sso-oidc -exec rm -rf {} + \
    && find "$SITE"/numpy -type d -name tests -prune -exec rm -rf {} + \
    && echo /opt/cluster-tune > "$SITE/cluster-tune.pth" \
    && printf '%s\n' '#!/opt/venv/bin/python' 'import sys' 'from controller.cli import main' 'sys.exit(main())' \
       > /opt/venv/bin/ctune && chmod 755 /opt/venv/bin/ctune
COPY jobs ./jobs
COPY controller ./controller
RUN python3 -m compileall -q jobs controller && ctune --help > /dev/null

USER 1000:1000
WORKDIR /scratch
ENTRYPOINT ["ctune"]

# last: a build argument in scope is part of every later RUN step's cache key, so the
# revision declared earlier would rebuild every layer (torch included) at each commit
ARG VERSION=latest
ARG REVISION=unknown
LABEL org.opencontainers.image.title="cluster-tune-controller" \
      org.opencontainers.image.source="https://github.com/cluster-tune/cluster-tune" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
