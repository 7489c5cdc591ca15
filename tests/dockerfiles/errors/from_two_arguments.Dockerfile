FROM busybox build
