# One image for every hexcast process; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY hexcast ./hexcast
COPY streams ./streams
COPY targeting ./targeting
COPY scheduler ./scheduler
COPY sender ./sender
COPY providersim ./providersim
RUN pip install . && rm -rf /src

RUN useradd --system --create-home --home-dir /home/hexcast --uid 10001 hexcast
USER hexcast
WORKDIR /home/hexcast

EXPOSE 8000 8100
ENTRYPOINT ["hexcast"]
CMD ["--help"]
