FROM busybox
LABEL description="café ☕" 名前=値
RUN echo "héllo wörld"
