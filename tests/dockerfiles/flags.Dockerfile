FROM --platform=$BUILDPLATFORM busybox AS base
RUN --mount=type=cache,target=/root/.cache --mount=type=tmpfs,target=/tmp --network=none echo cached
COPY --chown=1000:1000 --chmod=0644 --link ["my file", "/dst/"]
COPY --link=false a /b
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar.gz /
ADD --keep-git-dir=true https://github.com/moby/buildkit.git /bk
COPY --exclude=*.tmp --exclude=*.log . /src
