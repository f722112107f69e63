# syntax=docker/dockerfile:1
# deploy/docker/migrate.Dockerfile -- the seashore-migrate image (applies migrations/*.sql; run as the migrations Job).
# Build context: the repository root:
#   docker build -f deploy/docker/migrate.Dockerfile -t REGISTRY/migrate:TAG .
# Checked offline by tests/deploy/dockerfiles.test.mjs (packages against the
# binary's NEEDED libraries); see deploy/docker/README.md.

# ---- build: Debian 12 toolchain and every -dev package the top-level
# CMakeLists.txt requires (pkg_check_modules ... REQUIRED and protoc-c are
# checked at configure time for all targets, so all are needed even though
# seashore-migrate links only libpq and OpenSSL).
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
 && cmake --build build --target seashore-migrate -j"$(nproc)"

# ---- runtime: the shared libraries seashore-migrate links (readelf -d NEEDED -> dpkg -S)
# and CA certificates (TLS to PostgreSQL).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libpq5 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 seashore \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin seashore
COPY --from=build /src/build/tools/migrate/seashore-migrate /usr/local/bin/seashore-migrate
# The SQL files (root-owned, read-only for the runtime user).
COPY migrations/*.sql /migrations/
ENV MIGRATIONS_DIR=/migrations
USER 10001:10001
# No port: a one-shot command (exit 0 done or up to date, 1 failure).
ENTRYPOINT ["/usr/local/bin/seashore-migrate"]
CMD ["--dir", "/migrations"]
