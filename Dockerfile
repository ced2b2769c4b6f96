# Lapis: multi-stage image. Build wheels with compilers, run on a slim base as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY project ./project
COPY apps ./apps
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    LAPIS_MANIFEST_STATIC=1 \
    PORT=8000
RUN groupadd --system lapis && useradd --system --gid lapis --home /app lapis \
    && mkdir -p /data /app && chown lapis:lapis /data
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --chown=lapis:lapis manage.py ./
COPY --chown=lapis:lapis project ./project
COPY --chown=lapis:lapis apps ./apps
COPY --chown=lapis:lapis templates ./templates
COPY --chown=lapis:lapis static ./static
# Static files are collected (hashed, compressed) at build; WhiteNoise serves them under Daphne.
RUN SECRET_KEY=collectstatic-only DATA_DIR=/tmp/build-data python manage.py collectstatic --noinput -v0 \
    && rm -rf /tmp/build-data
USER lapis
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8000\")}/healthz', timeout=4)"
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python -m project.server -b 0.0.0.0 -p ${PORT} --proxy-headers project.asgi:application"]
