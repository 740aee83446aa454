# syntax=docker/dockerfile:1
# Gatehouse container image: compiled JavaScript on Node 24, production dependencies only, non-root, read-only root
# filesystem friendly, with a CycloneDX SBOM at /opt/gatehouse/sbom.cdx.json. Build: docker build -t gatehouse .
# Override the bases with --build-arg (e.g. a mirror of them in your own registry).
ARG BUILD_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# 1. Compile and pack exactly what `npm publish` would ship (scripts/build-package.ts via prepack).
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the pinned `node` package would download a second Node; this stage already runs Node 24.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json README.md ./
COPY bin ./bin
COPY scripts/build-package.ts ./scripts/
COPY src ./src
COPY examples/graph-server ./examples/graph-server
RUN mkdir /pkg && node scripts/build-package.ts && npm pack --ignore-scripts --pack-destination /pkg

# 2. Install the package with its locked production dependencies only, and describe them in an SBOM (the dev and
# optional entries are dropped from package.json first: npm sbom reports declared but absent packages as errors).
FROM ${BUILD_IMAGE} AS install
WORKDIR /opt/gatehouse
COPY --from=build /pkg/ /pkg/
COPY package-lock.json ./
RUN tar -xzf /pkg/gatehouse-*.tgz --strip-components=1 \
 && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
 && npm pkg delete devDependencies optionalDependencies \
 && npm sbom --sbom-format=cyclonedx --omit=dev > sbom.cdx.json \
 && rm -rf /root/.npm

# 3. Runtime: no shell, no package manager, user 65532. Nothing is written inside the image at run time: the config
# is mounted at /etc/gatehouse, state lives in Redis (or a SQLite file on a mounted volume), logs go to stdout.
FROM ${RUNTIME_IMAGE}
WORKDIR /opt/gatehouse
COPY --from=install --chown=0:0 /opt/gatehouse /opt/gatehouse
ENV NODE_ENV=production
# --max-semi-space-size=16 (MB): V8 sizes the young generation from the host's memory, up to 64 MB per semi-space on
# a large host. 16 MB under load: fewer young-generation collections than a smaller size, and less CPU per request
# (measured against 4 MB in docs/performance.md). It costs nothing at start: `gatehouse start` collects once before it
# listens, which returns the young generation that start-up filled. After load it stays until 5 quiet minutes have
# passed (src/runtime/process-heap.ts). Set NODE_OPTIONS in the deployment to choose otherwise. The bench starts
# Gatehouse with this value.
ENV NODE_OPTIONS=--max-semi-space-size=16
USER 65532:65532
EXPOSE 8080
# Probes: GET /healthz (liveness) and GET /readyz (readiness; 503 while draining). On SIGTERM Gatehouse stops taking
# requests and drains open ones and SSE streams for server.shutdownGraceMs, then exits 0 (PID 1 handles signals:
# Node is started directly, no shell in between).
ENTRYPOINT ["/nodejs/bin/node", "/opt/gatehouse/bin/gatehouse.js"]
CMD ["start", "--config", "/etc/gatehouse/gatehouse.yaml"]
