# syntax=docker/dockerfile:1
# kvstore image: `docker build -t kvstore .`, then `docker run kvstore <command>` (the
# entrypoint is the `kvstore` CLI). docker-compose.yml runs a manager and five nodes
# from it. Data lives under the /data volume; the process runs as the unprivileged
# `node` user.

# ---- build: all dependencies, compile TypeScript to dist/ -----------------------------
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied; we build below.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and the compiled code only ----------------------
FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
RUN ln -s /app/dist/src/cli/main.js /usr/local/bin/kvstore \
  && mkdir -p /data /certs /ca /server-certs /client-certs \
  && chown node:node /data /certs /ca /server-certs /client-certs
USER node
VOLUME ["/data"]
# gRPC (manager 7000, nodes 7001…) and metrics (gRPC port + 1000).
EXPOSE 7000 8000
# Ready = /readyz answers 200 on the metrics port. The slim image has no curl, so
# Node's fetch does it. KVSTORE_HEALTH_PORT is the metrics port (compose sets its own checks).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.KVSTORE_HEALTH_PORT || '8000') + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["kvstore"]
CMD ["--help"]
