# syntax=docker/dockerfile:1
# deploy/docker/r2-uploader.Dockerfile -- the r2-uploader image (multipart uploads of the tracks to R2).
# Build context: the repository root:
#   docker build -f deploy/docker/r2-uploader.Dockerfile -t REGISTRY/r2-uploader:TAG .
# Checked offline by tests/deploy/dockerfiles.test.mjs (packages against the
# binary's NEEDED libraries); see deploy/docker/README.md.

# ---- build: Debian 12 toolchain and every -dev package the top-level
# CMakeLists.txt requires (pkg_check_modules ... REQUIRED and protoc-c are
# checked at configure time for all targets, so all are needed even though
# r2-uploader links only some of them).
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
 && cmake --build build --target r2-uploader -j"$(nproc)"

# ---- runtime: the shared libraries r2-uploader links (readelf -d NEEDED -> dpkg -S)
# and nothing else but CA certificates (TLS to the object store, NATS,
# PostgreSQL).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libcurl4 libjansson4 libjwt0 libmicrohttpd12 libnats3.4 libpq5 libprotobuf-c1 libssl3 libxml2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 seashore \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin seashore
COPY --from=build /src/build/services/r2-uploader/r2-uploader /usr/local/bin/r2-uploader
USER 10001:10001
# OPS_LISTEN (/healthz /readyz /metrics)
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/r2-uploader"]
