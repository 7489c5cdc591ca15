FROM busybox
COPY <<A <<B
one
A
two
B
