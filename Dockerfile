# syntax=docker/dockerfile:1
# forge in a container: the static binary, built as .ci/run builds it (by
# scripts/build-release: glibc with +crt-static, SQLite and OpenSSL compiled
# in, its code laid out), on an empty image, run as a numeric non-root user,
# its data in the /data volume.
#
#   docker build -t forge .
#   docker run -d -p 8080:8080 -v forge-data:/data \
#     -e FORGE_SERVER__PUBLIC_URL=https://auth.example.com forge
#
# Every key of /etc/forge/forge.toml can be overridden with FORGE_<SECTION>__<KEY>;
# the image's HEALTHCHECK is `forge health` (GET /health/ready on server.bind).

FROM rust:1.95-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# perl and make build the vendored OpenSSL; both are in the rust image.
# scripts/build-release traces the build under valgrind (python3 drives it)
# to lay out its code; any version of either will do.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends valgrind python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bash scripts/build-release \
 && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/forge /out/forge
# The sample configuration, adapted: listen on every interface of the
# container, keep the database (and relative paths such as backups) in /data.
# The build fails if the sample changed so that an edit no longer applies.
RUN set -eu; \
    mkdir -p /out/etc/forge /out/data; \
    sed -e 's|^bind = "127.0.0.1:8080"$|bind = "0.0.0.0:8080"|' \
        -e 's|^url = "sqlite://forge.db"$|url = "sqlite:///data/forge.db"|' \
        forge.toml > /out/etc/forge/forge.toml; \
    grep -q '^bind = "0.0.0.0:8080"$' /out/etc/forge/forge.toml; \
    grep -q '^url = "sqlite:///data/forge.db"$' /out/etc/forge/forge.toml; \
    /out/forge --config /out/etc/forge/forge.toml config check > /dev/null; \
    ldd /out/forge 2>&1 | grep -Eq 'statically linked|not a dynamic executable'

FROM scratch
# Trust roots for outgoing TLS (SMTP, webhooks, Twilio) on an empty image.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/forge /forge
COPY --from=build /out/etc/forge/forge.toml /etc/forge/forge.toml
# An empty /data owned by the runtime user: a new named volume inherits it.
COPY --from=build --chown=65532:65532 /out/data /data
ENV FORGE_CONFIG=/etc/forge/forge.toml
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=6s --start-period=20s --retries=3 CMD ["/forge", "health"]
ENTRYPOINT ["/forge"]
CMD ["serve"]
