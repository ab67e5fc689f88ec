# syntax=docker/dockerfile:1
#
# rwsgi in a container: a build stage compiles rwsgi against Debian bookworm's
# CPython 3.11, a slim runtime stage runs it as an unprivileged user.
#
#   docker build -t rwsgi .
#   docker run --rm -p 8000:8000 rwsgi          # serves the demo app on :8000
#
# Your app: build FROM this image, copy your code to /app/src and install its
# requirements into the virtualenv /app/venv (see the README, "Containers").
#
# Both stages use Debian's own python3 (bookworm = CPython 3.11). rwsgi links
# against the shared libpython3.11.so.1.0 and records its directory
# (/usr/lib/<arch>-linux-gnu) as an rpath; the runtime stage installs the same
# distro package, so the library is found at the same path. An image such as
# python:3.11-slim keeps its libpython in /usr/local/lib instead: do not mix them.

# ---- build: rwsgi and the app's virtualenv ---------------------------------
FROM rust:1-bookworm AS build

# Package versions are not pinned (hadolint DL3008): bookworm's security
# updates replace them, and a pin would break the build at the next one.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-dev python3-venv \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# PYO3_PYTHON: the interpreter whose libpython rwsgi embeds (not a rustup or
# pyenv one that may come first on PATH).
ENV PYO3_PYTHON=/usr/bin/python3
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -m 0755 target/release/rwsgi /usr/local/bin/rwsgi

# The app's virtualenv, made with the runtime's interpreter path
# (/usr/bin/python3), so it works unchanged once copied.
RUN python3 -m venv /app/venv

# ---- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# libpython3.11: the shared library rwsgi is linked against. python3: the
# interpreter the virtualenv points at (and its standard library).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpython3.11 python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rwsgi \
 && useradd --system --uid 10001 --gid rwsgi --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin rwsgi \
 && mkdir -p /app/static

COPY --from=build /usr/local/bin/rwsgi /usr/local/bin/rwsgi
COPY --from=build /app/venv /app/venv
# The demo app (it answers every path, /healthz included); replace /app/src
# with your code. /app/static (empty here) is served at /static by the workers
# themselves (--static-map below): put your collected static files there,
# e.g. `RUN python manage.py collectstatic --noinput` with
# STATIC_ROOT = "/app/static".
COPY etc/apps/hello.py /app/src/app.py

# TMPDIR: request bodies above --post-buffering are spooled there (mount a
# writable volume on /tmp when the root filesystem is read-only).
# WEB_CONCURRENCY: the number of worker processes when no --processes flag
# (or config file) sets it.
# PORT: serve HTTP on all interfaces on this port when no --http or --socket
# (flag, RWSGI_HTTP, config file) says where; `docker run -e PORT=...` and
# platforms that set PORT change it.
ENV PATH=/app/venv/bin:$PATH \
    VIRTUAL_ENV=/app/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/tmp \
    WEB_CONCURRENCY=2 \
    PORT=8000

WORKDIR /app/src
# A numeric user, so Kubernetes' runAsNonRoot can verify it is not root.
USER 10001:10001

# 8000: the app (HTTP). 9100: Prometheus metrics (--metrics).
EXPOSE 8000 9100

# TERM is rwsgi's graceful shutdown: in-flight requests finish (up to
# --shutdown-timeout), then it exits 0. Give `docker stop -t` / Kubernetes'
# terminationGracePeriodSeconds more than --shutdown-delay + --shutdown-timeout.
STOPSIGNAL SIGTERM

# rwsgi runs as PID 1 itself, with no init (tini, dumb-init) in front: its
# master handles TERM/INT/QUIT/HUP (PID 1 gets no default signal actions),
# reaps every child with waitpid(-1), orphans of the app included, and never
# daemonizes. Logs go to stderr.
ENTRYPOINT ["rwsgi"]
CMD ["--module", "app:application", "--chdir", "/app/src", \
     "--home", "/app/venv", "--shutdown-timeout", "25", \
     "--stats", "127.0.0.1:9191", "--metrics", ":9100", \
     "--static-map", "/static=/app/static"]
