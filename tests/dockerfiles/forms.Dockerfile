FROM busybox
RUN echo shell form
RUN ["echo", "exec form"]
CMD ["sh", "-c", "echo $HOME"]
CMD echo $HOME
ENTRYPOINT ["/bin/sh", "-c"]
ENTRYPOINT exec top -b
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
CMD ["unterminated",
ENTRYPOINT ['single', 'quotes']
CMD ["a"] trailing words
RUN []
