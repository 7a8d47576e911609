# The ey-platform CLI for the Cloud Run jobs (infra/terraform/run.tf):
#   docker build -t REGION-docker.pkg.dev/PROJECT/ey/ey-platform:TAG .
# Installed in place (editable), so that the dbt project beside src/ is where the
# transform command looks for it (<root>/dbt).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    EYP_PROFILE=gcp \
    EYP_DATA_DIR=/tmp/ey-platform
RUN useradd --create-home --uid 10001 ey
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY dbt ./dbt
RUN pip install --editable ".[gcp]" && chown -R ey /app/dbt
USER ey
ENTRYPOINT ["ey-platform"]
CMD ["--help"]
