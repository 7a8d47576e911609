# The ey-platform CLI for the Cloud Run jobs (infra/terraform/run.tf):
#   docker build -t REGION-docker.pkg.dev/PROJECT/ey/ey-platform:TAG .
# The builder stage makes the wheel, the dbt project inside it; the image installs only
# that wheel, so code and dbt project are read-only site-packages owned by root. dbt
# writes its target and logs under EYP_DATA_DIR.

FROM python:3.13-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.13-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EYP_PROFILE=gcp \
    EYP_DATA_DIR=/tmp/ey-platform
RUN useradd --create-home --uid 10001 ey
COPY --from=builder /wheels /wheels
RUN pip install "$(echo /wheels/ey_platform-*.whl)[gcp]" && rm -rf /wheels
USER 10001
WORKDIR /home/ey
ENTRYPOINT ["ey-platform"]
CMD ["--help"]
