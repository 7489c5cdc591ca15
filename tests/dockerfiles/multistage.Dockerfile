FROM golang:1.22 AS build
WORKDIR /src
COPY . .
RUN go build -o /out/app .

FROM alpine:3.19 AS Test
COPY --from=build /out/app /usr/local/bin/app

FROM scratch
COPY --from=0 /out/app /app
COPY --from=test /usr/local/bin/app /app2
ENTRYPOINT ["/app"]
