FROM busybox
STOPSIGNAL SIGKILL
STOPSIGNAL 9
SHELL ["/bin/sh", "-ec"]
VOLUME ["/data", "/logs"]
VOLUME /cache /tmp/x
VOLUME $DATA
