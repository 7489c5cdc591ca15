FROM busybox
WORKDIR --x=1 /a
