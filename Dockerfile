# The overlay daemon in an empty image. No base image is pulled: the binary
# is static (CGO_ENABLED=0) and built on the host first (`make build`).
#
#   docker build -t overlay .                    the daemon alone
#   docker build --target testnet -t X .        plus the testnet's TEST keys
#
# There is no shell in the image: the healthcheck runs the binary itself
# (`overlay health`: exit 0 once the node is up and, for a private node,
# holds at least one relay reservation).

FROM scratch AS testnet
COPY bin/overlay /overlay
# TEST KEYS ONLY (testnet/keys/README.md): public in the repository.
COPY testnet/keys/*.key /keys/
ENTRYPOINT ["/overlay"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/overlay", "health"]

FROM scratch AS overlay
COPY bin/overlay /overlay
ENTRYPOINT ["/overlay"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/overlay", "health"]
