# syntax=docker/dockerfile:1
# The todo service: one image for the server processes (`serve`, the default) and for the
# Envoy edge (`edge`), plus the one-shot commands (`migrate`, `check`, `seed`, ...).
#
#   make image                      # buildah, daemonless, from a debootstrap base (README: Deployment)
#   docker build -t todo-service .  # anywhere with Docker and a registry
#
# BASE_IMAGE must provide python3 (3.11+) with venv; both stages use the same one, so the
# virtualenv copied from the build stage finds its interpreter at the same path.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: the locked dependencies and the wheel, into /opt/todo ----------------------------
FROM ${BASE_IMAGE} AS build
SHELL ["/bin/sh", "-eu", "-c"]
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Dependencies first, from the hashed lock: this layer changes only when the lock does.
# An optional build secret `ca` (a PEM bundle) is trusted for the index, for builders behind a
# TLS-inspecting proxy (make image passes the host's bundle); it never lands in a layer.
COPY requirements/prod.lock requirements/prod.lock
RUN --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv /opt/todo \
 && /opt/todo/bin/pip install --require-hashes --only-binary=:all: -r requirements/prod.lock
# Then this project as a wheel (migrations, Envoy template, descriptor set and the todo.v1
# stubs inside), installed without dependencies: everything else came from the lock.
COPY pyproject.toml alembic.ini ./
COPY generated/ generated/
COPY server/ server/
RUN --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/todo/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/todo/bin/pip install --no-deps /dist/todo_service-*.whl \
 && /opt/todo/bin/pip check \
 && /opt/todo/bin/pip uninstall --yes pip setuptools \
 && find /opt/todo -name '__pycache__' -prune -exec rm -rf '{}' +

# ---- runtime: the virtualenv and a non-root user, nothing else ----------------------------
FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/sh", "-eu", "-c"]
RUN groupadd --system --gid 10001 todo \
 && useradd --system --uid 10001 --gid todo --home-dir /var/lib/todo --create-home \
      --shell /usr/sbin/nologin todo
COPY --from=build /opt/todo /opt/todo
ENV PATH=/opt/todo/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TODO_ENV=production \
    TODO_DATA_DIR=/var/lib/todo \
    TODO_GRPC_HOST=0.0.0.0 \
    TODO_START_ENVOY=false
USER 10001:10001
WORKDIR /var/lib/todo
# 50051.. : the server processes (one port each); 8080: Envoy, when run as `edge`.
EXPOSE 50051 8080
# gRPC Health/Check of every server process in the container (`edge`: compose overrides it).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "server", "check-health"]
# Exec form: python is PID 1 and receives SIGTERM itself; the supervisor drains the worker
# processes and reaps them. `edge` execs Envoy, which then is PID 1 and handles SIGTERM.
ENTRYPOINT ["python", "-m", "server"]
CMD ["serve"]
