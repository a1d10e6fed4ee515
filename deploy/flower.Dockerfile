# Flower (compose.yaml's `flower`) from PyPI, in a venv of its own on the Debian base.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY ca/ /tmp/ca/
RUN if [ -s /tmp/ca/ca-certificates.crt ]; then export PIP_CERT=/tmp/ca/ca-certificates.crt; fi \
 && python3 -m venv /opt/flower \
 && /opt/flower/bin/pip install --quiet --no-cache-dir --disable-pip-version-check \
      "flower>=2.0,<3" "celery[redis]>=5.4"

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
 && useradd --create-home --uid 10003 flower
COPY --from=build /opt/flower /opt/flower
ENV PATH=/opt/flower/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN celery --version && python -c "import flower"
USER flower
WORKDIR /home/flower
EXPOSE 5555
# The broker and FLOWER_BASIC_AUTH come from the environment (compose.yaml).
CMD ["sh", "-c", "exec celery --broker=\"$FLOWER_BROKER_URL\" flower --port=5555"]
