FROM busybox
LABEL \
  key
