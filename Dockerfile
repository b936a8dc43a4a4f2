# Lectern's app image: `lectern migrate`, then `lectern serve` on 0.0.0.0:8080.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LECTERN_HOST=0.0.0.0 \
    LECTERN_PORT=8080 \
    LECTERN_DATA_DIR=/var/lib/lectern

WORKDIR /srv/lectern

# The CJK TrueType font certificate PDFs embed (LECTERN_CERTIFICATE_FONT; docs/credit.md, "Certificates").
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so a code change does not reinstall aiortc, av and friends (all wheels).
COPY pyproject.toml ./
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); \
print('\n'.join(d['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY streaming/ streaming/
COPY catalog/ catalog/
COPY recorder/ recorder/
COPY infra/ infra/
COPY integrations/ integrations/
COPY static/ static/
# The replay page loads hls.js from node_modules (served at /static/vendor/hls.min.js).
COPY node_modules/hls.js/dist/hls.min.js node_modules/hls.js/dist/hls.min.js
# Editable on purpose: streaming/app.py serves static/ from beside the packages, which a plain
# `pip install .` would leave behind (static/ is not package data).
# pyproject.toml names README.md as the long description; the image does not need its text.
RUN (test -f README.md || touch README.md) && pip install --no-deps -e . \
    && useradd --system --home-dir /var/lib/lectern --shell /usr/sbin/nologin lectern \
    && mkdir -p /var/lib/lectern && chown lectern:lectern /var/lib/lectern

USER lectern
EXPOSE 8080
VOLUME ["/var/lib/lectern"]
CMD ["sh", "-c", "lectern migrate && exec lectern serve"]
