# linvideo server image (CPU, Debian 12 packages). GPU images build the same tree against a CUDA
# LibTorch 2.x (see tests/gpu/run.sh for the core/kernels build on such a machine).
#   docker build -t linvideo .
#   head -c 24 /dev/urandom | base64 > admin-token      # the Admin/Jobs bearer token
#   docker run -p 50051:50051 -p 9464:9464 \
#     -v "$PWD/admin-token:/run/secrets/linvideo-admin-token:ro" linvideo
# The server refuses to listen beyond loopback without a token (Admin and Jobs would answer
# anyone); rewriting the mounted file rotates the token without a restart.
FROM debian:12-slim AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN BUILD_DIR=/build scripts/build.sh -DLINVIDEO_BUILD_TESTS=OFF \
 && /build/tools/linvideo-model init --config tiny --seed 0 /models/tiny

FROM debian:12-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libtorch1.13 libblis4-openmp libgrpc++1.51 libprotobuf32 libavcodec59 libavformat59 \
      libavutil57 libswscale6 libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 \
      libsentencepiece0 libgoogle-glog0v6 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# linvideo-train and linvideo-eval run post-training jobs (--jobs.root), found next to the server.
COPY --from=build /build/server/linvideo-server /build/client/linvideo /build/tools/linvideo-model \
     /build/tools/linvideo-generate /build/tools/linvideo-train /build/tools/linvideo-eval \
     /usr/local/bin/
COPY --from=build /models /models
COPY models/tokenizer /usr/share/linvideo/tokenizer
EXPOSE 50051 9464
USER nobody
ENTRYPOINT ["linvideo-server", "--listen=0.0.0.0:50051", "--metrics.listen=0.0.0.0:9464", \
            "--checkpoint_root=/models", "--auth.admin_token_file=/run/secrets/linvideo-admin-token"]
CMD ["--model=default=/models/tiny"]
