FROM busybox
RUN cat << EOF > /etc/motd
hello
EOF
