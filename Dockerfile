# One image for every process of the GPU fleet manager; the command picks the service:
#   docker run gpufleet python -m services.scheduler
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --system --uid 10001 --home /app gpufleet
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY proto ./proto
COPY migrations ./migrations
RUN pip install . && python -c "import gpufleet.v1.scheduler_pb2, shared, services"
ENV GPUFLEET_MIGRATIONS_DIR=/app/migrations
RUN mkdir -p /app/agent-state && chown gpufleet /app/agent-state
USER gpufleet
CMD ["python", "-m", "services.gateway"]
