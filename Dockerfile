# The one image of this project: API, worker, simulator, migrations and the Temporal setup job
# differ only by their command (docker-compose.yml). Build: docker build -t kzpay .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PAY_ENVIRONMENT=production \
    PAY_DATA_DIR=/var/lib/kzpay
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 kzpay \
    && useradd --system --uid 10001 --gid kzpay --home-dir /var/lib/kzpay --no-create-home \
       --shell /usr/sbin/nologin kzpay \
    && mkdir -p /var/lib/kzpay \
    && chown kzpay:kzpay /var/lib/kzpay
# Not root; and not in a directory with sources: the installed package is what runs.
USER kzpay
WORKDIR /var/lib/kzpay
EXPOSE 8000 8100
CMD ["python", "-m", "api"]
