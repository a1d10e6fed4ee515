# Redis from Debian's package (compose.yaml's `redis`): broker, job records and ledger.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
 && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
# Debian's Redis refuses other hosts in protected mode: the stack's network is private.
CMD ["redis-server", "--protected-mode", "no", "--bind", "0.0.0.0", "--dir", "/data", \
     "--appendonly", "yes", "--appendfsync", "always"]
