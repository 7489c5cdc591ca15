FROM busybox
WORKDIR /a b
WORKDIR relative
USER app:app
USER $UID
