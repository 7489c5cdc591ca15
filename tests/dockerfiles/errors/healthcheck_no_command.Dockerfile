FROM busybox
HEALTHCHECK --retries=3 CMD
