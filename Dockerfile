# The API image.
#   docker build -t local-ml-flow .
#   docker run --rm -p 8000:8000 local-ml-flow        # embedded mode: a complete demo
# With AWS_ENDPOINT_URL (or real AWS credentials) set it talks to that AWS instead
# (docker-compose.yml points it at LocalStack).

# The base: today's public Python image. bin/check_images.sh passes a base made on the machine
# (where no registry can be reached); nothing else differs from the build CI does.
ARG PYTHON_BASE=python:3.12-slim-bookworm

FROM ${PYTHON_BASE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /build
RUN python -m venv /opt/venv
# The locked versions (exported from uv.lock by ./bin/lock.sh, every hash checked), in a layer
# of their own: a source change does not reinstall them. Then the package alone.
COPY requirements.lock.txt ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock.txt
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .


FROM ${PYTHON_BASE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LMF_CACHE_DIR=/home/app/.cache/local-ml-flow

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /home/app
EXPOSE 8000

# The slim image has no curl: ask Python.
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["local-ml-flow"]
CMD ["serve", "--host", "0.0.0.0"]
