FROM busybox
SHELL /bin/bash -c
