FROM busybox
RUN <<EOF
echo hello
echo world
EOF
RUN <<-EOT sh
	echo indented
	EOT
COPY <<EOF /etc/motd
Welcome to $HOSTNAME
EOF
COPY <<"EOF" <<CONF /etc/
literal $HOME
EOF
key=value
CONF
RUN 3<<IN cat /dev/fd/3
from fd 3
IN
