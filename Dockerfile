# One image for the gateway and every worker pool (first draft; see compose.yaml).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY imagefleet imagefleet
COPY jobs jobs
COPY worker worker
COPY gateway gateway
COPY billing billing
COPY storage storage
RUN pip install --no-cache-dir . && useradd --system --uid 10001 fleet
USER fleet
EXPOSE 8080
CMD ["imagefleet", "gateway", "--host", "0.0.0.0"]
