# syntax=docker/dockerfile:1
#Escape = `
FROM busybox
RUN echo a `
  b
