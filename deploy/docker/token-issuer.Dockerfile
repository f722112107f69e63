# syntax=docker/dockerfile:1
# deploy/docker/token-issuer.Dockerfile -- the token-issuer image (the API, tokens, presigned URLs and the studio web app).
# Build context: the repository root:
#   docker build -f deploy/docker/token-issuer.Dockerfile -t REGISTRY/token-issuer:TAG .
# Checked offline by tests/deploy/dockerfiles.test.mjs (packages against the
# binary's NEEDED libraries); see deploy/docker/README.md.

# ---- web: the studio's static files. web/vendor/ is generated from
# node_modules by scripts/web-build.sh (make web), so it is built here from
# package-lock.json; node stays in this stage, the runtime image has none.
# --ignore-scripts: no package needs an install script to provide the three
# files web-build.sh copies.
FROM node:20-bookworm-slim AS web
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts/web-build.sh scripts/
COPY proto/ proto/
COPY web/ web/
RUN scripts/web-build.sh

# ---- build: Debian 12 toolchain and every -dev package the top-level
# CMakeLists.txt requires (pkg_check_modules ... REQUIRED and protoc-c are
# checked at configure time for all targets, so all are needed even though
# token-issuer links only some of them).
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config protobuf-c-compiler \
      libnats-dev libpq-dev libmicrohttpd-dev libjansson-dev libjwt-dev \
      libwebsockets-dev libcurl4-openssl-dev libxml2-dev libprotobuf-c-dev libssl-dev \
      libavformat-dev libavcodec-dev libavutil-dev libswresample-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what CMake reads (tests/ because the top-level CMakeLists.txt adds it).
COPY CMakeLists.txt ./
COPY proto/ proto/
COPY libseashore/ libseashore/
COPY services/ services/
COPY tools/ tools/
COPY tests/ tests/
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build --target token-issuer -j"$(nproc)"

# ---- runtime: the shared libraries token-issuer links (readelf -d NEEDED -> dpkg -S)
# and nothing else but CA certificates (TLS to the object store, NATS,
# PostgreSQL).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libcurl4 libjansson4 libjwt0 libmicrohttpd12 libnats3.4 libpq5 libprotobuf-c1 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 seashore \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin seashore
COPY --from=build /src/build/services/token-issuer/token-issuer /usr/local/bin/token-issuer
# The studio (pages, web/lib, generated web/vendor), served by token-issuer
# under WEB_ROOT on the same origin as the API.
COPY --from=web /src/web/ /usr/share/seashore/web/
ENV WEB_ROOT=/usr/share/seashore/web
USER 10001:10001
# HTTP_LISTEN (API and studio), OPS_LISTEN (/healthz /readyz /metrics)
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/token-issuer"]
