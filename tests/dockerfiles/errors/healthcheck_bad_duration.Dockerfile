FROM busybox
HEALTHCHECK --timeout=soon CMD true
