# paas/ruby:bookworm -- Ruby (Debian's ruby) with Bundler.
FROM paas/stack:bookworm
LABEL io.paas.stack=bookworm io.paas.language=ruby
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates ruby bundler tini; \
    rm -rf /var/lib/apt/lists/*
ENV BUNDLE_SILENCE_ROOT_WARNING=1
CMD ["irb"]
