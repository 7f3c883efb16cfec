# syntax=docker/dockerfile:1
# The txloop image: the npm package built from this repository, its CLI as the entrypoint, so a
# container's args start with the command (`mirror`, `sidecar`, `get gtx`, ...); the Helm chart
# (charts/txloop) runs it. Also holds the demo's Go bank (demo/go-bank) as /usr/local/bin/go-bank,
# for the chart's demo-banks example.
#
#   docker build -t ghcr.io/txloop/txloop:0.2.0 .
#
# This project's CI has no Docker engine: the image is not built or tested there (docs/kubernetes.md).

# Build: install every dependency, compile TypeScript to dist/, then drop the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

# The demo's Go bank, a static binary (the Go client it uses has no dependencies).
FROM golang:1.22-bookworm AS go-bank
WORKDIR /src
COPY clients/go clients/go
COPY demo/go-bank demo/go-bank
RUN cd demo/go-bank && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o /out/go-bank .

# Runtime: the built package in /app (dist/, the production node_modules, api/openapi.yaml the
# sidecar serves, the sources and docs), read-only for its user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
COPY --from=go-bank /out/go-bank /usr/local/bin/go-bank
# A non-root user without a shell login; the chart runs as the same id (runAsUser 10001).
RUN groupadd --gid 10001 txloop && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin txloop
USER 10001:10001
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["--help"]
