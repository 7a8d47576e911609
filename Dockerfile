# The ey-platform CLI for the Cloud Run jobs and worker pools (infra/terraform/run.tf),
# built once by the deploy workflow (.github/workflows/deploy.yml) and deployed by digest.
#
# Reproducible: every dependency comes from requirements.lock, pinned with its hashes
# (pip refuses a file whose hash is not there), as a binary wheel, so the final stage
# needs no compiler. The builder stage makes the package's wheel, with the build backend
# also from the lock; the image installs that wheel without dependencies, so code and dbt
# project are read-only site-packages owned by root. dbt writes its target and logs
# under EYP_DATA_DIR.

FROM python:3.13-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The commit's time, when the build passes it: the wheel's file times, so the same
# commit makes the same wheel.
ARG SOURCE_DATE_EPOCH
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY src ./src
# setuptools from the lock, then the wheel built with it (no isolated build, which would
# take whatever setuptools is newest).
RUN awk '/^setuptools==/ { keep = 1; print; next } /^[^ ]/ { keep = 0 } keep' requirements.lock \
        > build-requirements.txt \
    && pip install --require-hashes --no-deps --only-binary :all: -r build-requirements.txt \
    && pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && cp requirements.lock /wheels/

FROM python:3.13-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EYP_PROFILE=gcp \
    EYP_DATA_DIR=/tmp/ey-platform
RUN useradd --create-home --uid 10001 ey
COPY --from=builder /wheels /wheels
# The locked dependencies (the gcp extra's included), then the package alone; pip check
# proves the two agree, and the entry point must start.
RUN pip install --require-hashes --no-deps --only-binary :all: -r /wheels/requirements.lock \
    && pip install --no-deps /wheels/ey_platform-*.whl \
    && pip check \
    && ey-platform --help > /dev/null \
    && rm -rf /wheels
USER 10001
WORKDIR /home/ey
# Cloud Run jobs and worker pools run the entry point with the job's args and watch its
# exit status; they read no Docker HEALTHCHECK.
ENTRYPOINT ["ey-platform"]
CMD ["--help"]
