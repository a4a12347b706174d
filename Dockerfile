# One container: the `steward` binary with its templates, static files and migrations embedded,
# XGBoost's library beside it, the default config and the UCI data set.
#   Build: docker build -t steward .
#   Run:   docker run -p 8080:8080 -v steward:/var/lib/steward steward
# scripts/check-image builds this runtime stage's root filesystem without Docker (mmdebstrap),
# runs `steward serve` in it as the non-root user until /ready, and reports its size.

FROM rust:1.95-bookworm AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      cmake ninja-build libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# XGBoost's C++ library is compiled here (about 8 minutes on 2 cores) and shipped beside the
# binary, whose rpath is $ORIGIN.
RUN cargo build --release --locked \
 && scripts/stage-xgboost release \
 && cp target/release/steward target/release/libxgboost.so.3 /usr/local/bin/

FROM debian:bookworm-slim
# ca-certificates for TLS to SMTP, Slack and S3; libgomp1 for XGBoost's OpenMP.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/steward --create-home steward
COPY --from=build /usr/local/bin/steward /usr/local/bin/libxgboost.so.3 /usr/local/bin/
COPY config /app/config
COPY data /app/data
WORKDIR /app
USER steward
ENV STEWARD__SERVER__HOST=0.0.0.0 \
    STEWARD__STORAGE__DIR=/var/lib/steward \
    STEWARD__DATABASE__URL=sqlite:///var/lib/steward/steward.db \
    STEWARD__LOG__FORMAT=json
EXPOSE 8080
VOLUME /var/lib/steward
# `steward health` asks /health on the configured port (PORT when the platform sets it).
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["steward", "health"]
# SIGTERM: in-flight requests finish (server.shutdown_timeout_secs), the prediction log and the
# audit head are written, then the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["steward"]
CMD ["serve"]
