# The peer for bench/build.sh: what one would write by hand for the python-vendored fixture
# with the classic builder -- dependencies first, then the code, one stage.
FROM paas/python:bookworm
WORKDIR /app
COPY requirements.txt ./
COPY wheels ./wheels
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt
ENV PATH=/opt/venv/bin:$PATH
COPY . .
CMD ["python", "app.py"]
