FROM busybox
ENV a=b c=d
ENV legacy value with spaces
ENV e="f g" h=i\ j
ENV empty=
