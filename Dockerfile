# One image for every role of the stack (web, stream, worker, beat, migrate); the compose file picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TUTUM_VAR_DIR=/var/lib/tutum

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY manage.py ./
COPY tutum_api ./tutum_api
COPY nodeclusters ./nodeclusters
COPY providers ./providers

RUN useradd --system --home /var/lib/tutum tutum && mkdir -p /var/lib/tutum && chown tutum /var/lib/tutum
USER tutum
EXPOSE 8000 8001
CMD ["gunicorn", "tutum_api.wsgi", "--config", "python:tutum_api.gunicorn_conf", "--bind", "0.0.0.0:8000"]
