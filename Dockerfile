# The fleet image: the gateway, every worker pool, the sweeper (see compose.yaml).
# Debian bookworm packages and PyPI only. On a network that serves no image registry,
# `make stack` (deploy/stack.py) builds the base with debootstrap under the same tag.
# Plain Dockerfile syntax: Docker 20.10's legacy builder builds it as well as BuildKit.

# --- Stage 1: the venv and the project's wheel. pip reaches PyPI over TLS; where the
# network re-signs TLS, deploy/stack.py drops the host's CA bundle into deploy/ca/
# (git-ignored). Only this stage sees it: the final stage copies the venv, not the bundle.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
COPY deploy/ca/ /tmp/ca/
COPY pyproject.toml /src/
# The runtime dependencies, pyproject's list plus the server extra (no dev extra), in a layer that changes
# only with pyproject.toml; the project's own wheel next to it.
RUN if [ -s /tmp/ca/ca-certificates.crt ]; then export PIP_CERT=/tmp/ca/ca-certificates.crt; fi \
 && python3 -m venv /opt/imagefleet \
 && python3 -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['server']))" > /tmp/requirements.txt \
 && /opt/imagefleet/bin/pip install --quiet -r /tmp/requirements.txt \
 && /opt/imagefleet/bin/pip install --quiet --no-deps $(python3 -c "import tomllib; print(' '.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['tool']['imagefleet']['no-deps']))")
COPY README.md /src/
COPY imagefleet /src/imagefleet
COPY jobs /src/jobs
COPY worker /src/worker
COPY gateway /src/gateway
COPY billing /src/billing
COPY storage /src/storage
COPY bench /src/bench
RUN if [ -s /tmp/ca/ca-certificates.crt ]; then export PIP_CERT=/tmp/ca/ca-certificates.crt; fi \
 && /opt/imagefleet/bin/pip wheel --quiet --no-deps --wheel-dir /wheels /src

# --- Stage 2: what runs.
FROM debian:bookworm-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OMP_THREAD_LIMIT=1 \
    PATH=/opt/imagefleet/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# No docs, man pages or translations (as Debian's own slim image), and none of what headless
# Chromium with --disable-gpu never loads: Mesa's GPU drivers with the LLVM they link (162 MB),
# the Vulkan validation layer. Then Python, Tesseract's language data for the
# OCR roster plus orientation (tesserocr's wheel brings libtesseract), Chromium for from-html
# and fonts (CJK included) for rendered text.
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
      'path-exclude /usr/share/lintian/*' \
      'path-exclude /usr/lib/x86_64-linux-gnu/dri/*' \
      'path-exclude /usr/lib/x86_64-linux-gnu/libLLVM-15.so*' \
      'path-exclude /usr/lib/x86_64-linux-gnu/libz3.so*' \
      'path-exclude /usr/lib/chromium/libVkLayer_khronos_validation.so' \
      > /etc/dpkg/dpkg.cfg.d/imagefleet-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
      tesseract-ocr-osd tesseract-ocr-eng tesseract-ocr-spa tesseract-ocr-fra \
      tesseract-ocr-deu tesseract-ocr-ita tesseract-ocr-por tesseract-ocr-nld \
      tesseract-ocr-pol tesseract-ocr-rus tesseract-ocr-chi-sim \
      chromium fonts-dejavu-core fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && useradd --create-home --uid 10001 fleet
COPY --from=build /opt/imagefleet /opt/imagefleet
COPY --from=build /wheels /tmp/wheels
# A normal install of the wheel (not --no-deps): it fails here if a runtime dependency is
# missing, and so do the smoke checks after it (the commands every container runs).
RUN pip install --quiet --no-index --no-cache-dir --disable-pip-version-check "$(echo /tmp/wheels/*.whl)[server]" \
 && rm -rf /tmp/wheels \
 && imagefleet --help > /dev/null \
 && python -c "import gateway.app, imagefleet.dispatch, worker.tasks"
USER fleet
WORKDIR /home/fleet
EXPOSE 8080
CMD ["imagefleet", "gateway", "--host", "0.0.0.0", "--port", "8080"]
