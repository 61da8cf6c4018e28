# One image for the API, every worker and the migration job (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DELIVERY_DATA_DIR=/var/lib/delivery

RUN groupadd --system delivery \
    && useradd --system --gid delivery --home-dir /app --no-create-home delivery \
    && install -d -o delivery -g delivery /var/lib/delivery

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a source change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Editable install: migrations find alembic.ini next to the source tree, and worker.py
# (a py-module) runs from /app.
COPY . .
RUN pip install --no-cache-dir --no-deps -e .

USER delivery
EXPOSE 8000
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
