# One container: the `steward` binary with its templates, static files and migrations embedded.
# Build: docker build -t steward .   Run: docker run -p 8080:8080 -v steward:/var/lib/steward steward

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
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/steward --create-home steward
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
ENTRYPOINT ["steward"]
CMD ["serve"]
