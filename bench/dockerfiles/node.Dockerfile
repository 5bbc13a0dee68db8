# The peer for bench/build.sh: a hand-written Dockerfile for the node fixture (no
# dependencies, so no install step).
FROM paas/node:bookworm
WORKDIR /app
COPY . .
CMD ["node", "server.js"]
