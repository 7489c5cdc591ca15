


FROM busybox



RUN true

