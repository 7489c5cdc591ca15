FROM busybox
HEALTHCHECK NONE
HEALTHCHECK CMD wget -q -O- http://localhost/ || exit 1
HEALTHCHECK --interval=30s --timeout=3s --start-period=1m30s --start-interval=500ms --retries=3 \
  CMD ["wget", "-q", "http://localhost/"]
HEALTHCHECK --interval=0 CMD true
