FROM busybox
RUN echo one \
    two \
    three
RUN echo after
