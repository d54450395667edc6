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
# The system location every command finds (from any folder, also through the
# `netsh` link), so `docker exec` commands reach the server's store. Logs go
# to stdout; the control socket lives in /tmp, writable by any --user.
# PORTSHARE_* variables still override each key.
RUN mkdir -p /etc/portshare && printf '%s\n' \
    '[param]' \
    'http_port=8080' \
    'https_port=8443' \
    'public_dir=/srv/public' \
    'cert_dir=/srv/certs' \
    'log_dir=' \
    'control_socket=/tmp/portshare.sock' \
    > /etc/portshare/GLOBAL.INI
WORKDIR /srv
USER portshare
VOLUME ["/srv/public", "/srv/certs"]
EXPOSE 8080 8443
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/portshare"]
CMD ["serve"]
