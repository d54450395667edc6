# Build stage: compile a release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/portshare

# Runtime stage: a small Debian image with the binary, a non-root user, and
# public/ and certs/ as volumes.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /srv --shell /usr/sbin/nologin portshare \
    && mkdir -p /srv/public /srv/certs \
    && chown -R portshare /srv
COPY --from=build /src/target/release/portshare /usr/local/bin/portshare
# netsh-compatible commands: `docker exec … netsh http show sslcert`.
RUN ln -s /usr/local/bin/portshare /usr/local/bin/netsh
COPY --chown=portshare public/ /srv/public/
WORKDIR /srv
USER portshare
ENV PORTSHARE_PUBLIC_DIR=/srv/public \
    PORTSHARE_CERT_DIR=/srv/certs \
    PORTSHARE_LOG_DIR= \
    PORTSHARE_HTTP_PORT=8080 \
    PORTSHARE_HTTPS_PORT=8443
VOLUME ["/srv/public", "/srv/certs"]
EXPOSE 8080 8443
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/portshare"]
CMD ["serve"]
