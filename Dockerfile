# One small static image holding both binaries (/ferrolb-controller, /ferrolb-speaker); the
# manifests pick the binary with `command`. Build: docker build -t ghcr.io/ferrolb/ferrolb:0.1.0 .
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y musl-tools
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
      -p ferrolb-controller -p ferrolb-speaker --bin ferrolb-controller --bin ferrolb-speaker

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/ferrolb-controller /ferrolb-controller
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/ferrolb-speaker /ferrolb-speaker
USER 65532:65532
ENTRYPOINT ["/ferrolb-controller"]
