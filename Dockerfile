# moongate in a small image: a static binary in `FROM scratch`, running as a non-root user, reading
# its configuration and scripts from mounted directories.
#
#   docker build -t moongate .                                   # builds the binary in a Rust image
#   docker build --build-arg BINARY=prebuilt -t moongate .       # uses target/x86_64-unknown-linux-gnu/release/moongate,
#                                                                # built as tools/container-test.sh builds it
# Both end in the same `runtime` stage; tools/container-test.sh tests it with podman.
ARG BINARY=build

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --bin moongate --target x86_64-unknown-linux-gnu \
 && mkdir -p /out && cp target/x86_64-unknown-linux-gnu/release/moongate /out/moongate

FROM scratch AS prebuilt
COPY target/x86_64-unknown-linux-gnu/release/moongate /out/moongate

FROM ${BINARY} AS binary

FROM scratch AS runtime
COPY --from=binary /out/moongate /moongate
# Defaults, meant to be replaced by read-only mounts of your own.
COPY config /config
COPY scripts /scripts
USER 65532:65532
ENV MOONGATE_CONFIG=/config/gateway.yaml \
    MOONGATE_LISTEN=0.0.0.0:8080 \
    MOONGATE_ADMIN_LISTEN=0.0.0.0:9696 \
    MOONGATE_LOG_FORMAT=json
EXPOSE 8080 9696
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/moongate", "health"]
# moongate handles SIGTERM itself (it is PID 1 here): it drains and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/moongate"]
CMD ["run"]
