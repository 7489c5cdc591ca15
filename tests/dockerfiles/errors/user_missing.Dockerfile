FROM busybox
USER
