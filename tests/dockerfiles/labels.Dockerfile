FROM busybox
LABEL a=b "c d"=e
LABEL multi.label1="value1" \
      multi.label2="value2" \
      other=value3
LABEL description="This text illustrates \
that label-values can span multiple lines."
LABEL legacy value with spaces
