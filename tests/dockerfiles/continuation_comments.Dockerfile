FROM busybox
RUN apk add --no-cache \
    # the compiler
    gcc \

    make
# a comment between instructions
   # an indented comment
CMD ["sh"]
