FROM busybox
COPY --from build a b
