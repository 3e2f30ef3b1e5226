# The Outpost image: one image, two programs, chosen by each Deployment in
# config/base/operators.yaml (image ghcr.io/outpost-dev/outpost, tag set in config/base/kustomization.yaml):
#   outpost-operator       node --import tsx operators/main.ts --controllers=…   (the entrypoint)
#   outpost-service-proxy  node --import tsx operators/proxy/main.ts             (command override)
# Build it with
#   docker build -t ghcr.io/outpost-dev/outpost:0.1.0 .
# and, for kind, load it with `kind load docker-image ghcr.io/outpost-dev/outpost:0.1.0`.

# Production dependencies only (tsx runs the TypeScript sources; there is no build step).
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-slim
LABEL org.opencontainers.image.title="outpost" \
      org.opencontainers.image.description="Outpost operators and service proxy" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules node_modules
COPY package.json ./
COPY operators operators
# A numeric non-root user, so runAsNonRoot can verify it; the file system may be read-only.
USER 65532:65532
EXPOSE 8080 8443
ENTRYPOINT ["node", "--import", "tsx", "operators/main.ts"]
