FROM busybox
RUN true
COPY \
    onlyone
