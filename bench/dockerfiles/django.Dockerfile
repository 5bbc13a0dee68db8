# The peer for bench/push.sh: what one would write by hand for the django-monorepo fixture
# (seed 002's shape) with the classic builder -- dependencies first in a stage with a compiler
# for psycopg2, collectstatic, then a slim runtime stage that migrates and starts gunicorn,
# as a docker-compose `command:` would. .peer-ca.pem is the host's CA bundle, copied into
# the context by the script, so pip trusts this network's TLS proxy.
FROM paas/python-build:bookworm AS build
COPY .peer-ca.pem /etc/peer-ca.pem
ENV PIP_CERT=/etc/peer-ca.pem
WORKDIR /app
COPY requirements.txt ./
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt
ENV PATH=/opt/venv/bin:$PATH
COPY . .
RUN cd backend && python manage.py collectstatic --noinput

FROM paas/python:bookworm
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app/backend
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn config.wsgi --bind 0.0.0.0:$PORT --workers 2"]
