# The load balancer from Debian's package (compose.yaml's `lb`): one port for every gateway
# replica, health-checked (deploy/haproxy.cfg).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
COPY haproxy-503.http /etc/haproxy/errors/503.http
RUN haproxy -c -f /etc/haproxy/haproxy.cfg
USER haproxy
EXPOSE 8080
CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
