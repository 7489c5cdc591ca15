FROM busybox
XYZZY plugh
