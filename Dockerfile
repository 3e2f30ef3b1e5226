# The Outpost image: `outpost-operator` and `outpost-service-proxy` (see
# config/operators.yaml). Build it with
#   docker build -t ghcr.io/outpost-dev/outpost:0.1.0 .
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules node_modules
COPY package.json ./
COPY operators operators
USER 65532:65532
ENTRYPOINT ["node", "--import", "tsx", "operators/main.ts"]
