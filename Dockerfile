# Integration Health Monitor: one image for `ihm migrate`, `ihm api` and `ihm worker`.
FROM python:3.11-slim

# No .pyc files in the image, logs straight to `docker logs`, no pip self-check.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid: the processes never need root, and a fixed id
# keeps file ownership predictable on mounted volumes.
RUN groupadd --system --gid 10001 ihm \
    && useradd --system --uid 10001 --gid ihm --create-home --home-dir /home/ihm ihm

WORKDIR /src

# Only what the wheel is built from (see pyproject.toml: py-modules and
# packages.find); db/migrations/*.sql ride along as package data.
COPY pyproject.toml README.md ./
COPY ihm.py settings.py embedded.py ./
COPY schema/ ./schema/
COPY resolvers/ ./resolvers/
COPY workers/ ./workers/
COPY db/ ./db/

# Every dependency is pinned in pyproject.toml and ships manylinux wheels for
# CPython 3.11, so no compiler is needed. The source tree is removed after the
# install so the installed package is the only copy Python can import.
RUN pip install --no-cache-dir . \
    && cd / && rm -rf /src

# `ihm up` (embedded mode) writes ./.ihm/; give the user a writable cwd anyway.
WORKDIR /home/ihm
USER ihm:ihm

EXPOSE 8000

# Same default as docker-compose.yml's api service; migrate and worker
# override the command.
CMD ["ihm", "api", "--host", "0.0.0.0", "--port", "8000"]
