FROM busybox
RUN echo hi
FORM x
