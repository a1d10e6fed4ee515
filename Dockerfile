# One image for the gateway and every worker pool (see compose.yaml).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OMP_THREAD_LIMIT=1
# Tesseract with the OCR roster's languages, Chromium for from-html, fonts for both.
RUN apt-get update && apt-get install -y --no-install-recommends \
      tesseract-ocr tesseract-ocr-eng tesseract-ocr-spa tesseract-ocr-fra tesseract-ocr-deu \
      tesseract-ocr-ita tesseract-ocr-por tesseract-ocr-nld tesseract-ocr-pol tesseract-ocr-rus \
      tesseract-ocr-chi-sim chromium fonts-dejavu-core fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY imagefleet imagefleet
COPY jobs jobs
COPY worker worker
COPY gateway gateway
COPY billing billing
COPY storage storage
COPY bench bench
RUN pip install --no-cache-dir . && useradd --system --create-home --uid 10001 fleet
USER fleet
EXPOSE 8080
CMD ["imagefleet", "gateway", "--host", "0.0.0.0"]
