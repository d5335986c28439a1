# syntax=docker/dockerfile:1
# linvideo server image, CPU: Debian 12 packages (LibTorch 1.13, gRPC 1.51, FFmpeg 5.1), the
# shipped models baked in and served as default, default-linvideo and default-4step (as
# scripts/run.sh does). The CUDA image is Dockerfile.cuda. docs/deploy.md ("Images") has the whole
# story; scripts/build-image.sh builds this file with podman or docker.
#   docker build -t linvideo .
#   head -c 24 /dev/urandom | base64 | tr -d '/+=' > admin-token   # the Admin/Jobs bearer token
#   docker run -d -p 50051:50051 -p 9464:9464 -v linvideo-state:/var/lib/linvideo \
#     -v "$PWD/admin-token:/run/secrets/linvideo-admin-token:ro" linvideo
#   build/client/linvideo generate --prompt="a small red circle moves to the left" --out=out.mp4
# The server refuses to listen beyond loopback without a token (Admin and Jobs would answer
# anyone); rewriting the mounted file rotates the token without a restart. The token file must be
# readable by uid 10001.
#
# BASE_IMAGE: any Debian 12 (bookworm) image (default: debian:12-slim, fully qualified so podman
# needs no short-name alias); scripts/build-image.sh can make one with debootstrap where no
# registry is reachable.
ARG BASE_IMAGE=docker.io/library/debian:12-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
# Compile jobs: the build needs ~2.5 GiB of memory per job (LibTorch headers).
ARG JOBS=2
# As scripts/build.sh: without these sloppiness settings every source that uses the precompiled
# <torch/torch.h> is a ccache miss.
ENV CCACHE_BASEDIR=/src \
    CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
# Only the binaries the image ships, no tests; stripped (-g1 debug info would double their size).
# The ccache cache mount only speeds up rebuilds; it is not part of any layer.
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DLINVIDEO_BUILD_TESTS=OFF -DLINVIDEO_WITH_CUDA=OFF \
 && cmake --build /build -j "${JOBS}" --target linvideo-server linvideo linvideo-model \
      linvideo-generate linvideo-train linvideo-eval \
 && mkdir -p /out \
 && cp /build/server/linvideo-server /build/client/linvideo /build/tools/linvideo-model \
      /build/tools/linvideo-generate /build/tools/linvideo-train /build/tools/linvideo-eval /out/ \
 && strip --strip-unneeded /out/*

FROM ${BASE_IMAGE}
# Runtime libraries only: the packages of the sonames `ldd` lists for the binaries below (the
# check after COPY fails the build if one is missing). BLIS must be the BLAS LibTorch sees: the
# reference BLAS that libtorch1.13 pulls in is ~40x slower (scripts/install-deps.sh).
# libtorch1.13's OpenCV/Qt dependencies pull in Mesa's GL drivers and the LLVM and Z3 they need:
# 160 MB that no binary loads (not in any `ldd` closure; nothing here renders GL). dpkg skips
# those files, the packages stay installed, so apt stays consistent.
RUN printf '%s\n' 'path-exclude /usr/lib/x86_64-linux-gnu/dri/*' \
      'path-exclude /usr/lib/x86_64-linux-gnu/libLLVM-15.so*' \
      'path-exclude /usr/lib/x86_64-linux-gnu/libz3.so*' > /etc/dpkg/dpkg.cfg.d/linvideo-no-gl \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libtorch1.13 libblis4-openmp libgrpc++1.51 libprotobuf32 libavcodec59 libavformat59 \
      libavutil57 libswscale6 libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 \
      libsentencepiece0 libgoogle-glog0v6 \
 && update-alternatives --set libblas.so.3-x86_64-linux-gnu \
      /usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
# A fixed uid (not nobody): it owns the writable state (journal and results of Submit'ed requests,
# job folders, published checkpoints) under /var/lib/linvideo, a volume.
RUN groupadd --system --gid 10001 linvideo \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/linvideo --no-create-home \
      --shell /usr/sbin/nologin linvideo \
 && mkdir -p /var/lib/linvideo/state /var/lib/linvideo/jobs /var/lib/linvideo/checkpoints \
 && chown -R 10001:10001 /var/lib/linvideo
# linvideo-train and linvideo-eval run post-training jobs (--jobs.root), found next to the server.
COPY --from=build /out/ /usr/local/bin/
RUN ! ldd /usr/local/bin/linvideo* | grep -F "not found"
# The tokenizer is linvideo-model init's default; the models are read-only, owned by root.
COPY models/tokenizer /usr/share/linvideo/tokenizer
COPY models/default /models/default
COPY models/default-linvideo /models/default-linvideo
COPY models/default-4step /models/default-4step
VOLUME /var/lib/linvideo
EXPOSE 50051 9464
USER 10001:10001
# grpc.health.v1 Check: SERVING once the models are loaded and the port is open; NOT_SERVING while
# paused or draining. Loading the three models takes seconds; --start-period covers slow disks.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD linvideo --timeout=5 health > /dev/null || exit 1
# SIGTERM drains (in-flight requests finish within --drain_grace_s): give `docker stop` a
# --stop-timeout (or Kubernetes terminationGracePeriodSeconds) above it.
ENTRYPOINT ["linvideo-server", "--listen=0.0.0.0:50051", "--metrics.listen=0.0.0.0:9464", \
            "--checkpoint_root=/var/lib/linvideo/checkpoints", "--jobs.root=/var/lib/linvideo/jobs", \
            "--state_dir=/var/lib/linvideo/state", \
            "--auth.admin_token_file=/run/secrets/linvideo-admin-token"]
# Arguments given to `docker run` replace these: repeat the --model flags you want served.
CMD ["--model=default=/models/default", "--model=default-linvideo=/models/default-linvideo", \
     "--model=default-4step=/models/default-4step"]
