FROM busybox
MAINTAINER Jane Doe <jane@example.com>
ONBUILD ADD . /app/src
ONBUILD RUN ["make", "-C", "/app/src"]
ONBUILD COPY --from=builder --chown=app:app /out /app
onbuild run echo \
    lowercase
