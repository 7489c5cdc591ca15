# leading comment
FROM busybox
# comment
RUN echo a # not a comment: it is part of the command
RUN echo \
# comment inside the continuation
  b
