"""One API process of several sharing one port: `python -m api.serve --host H --port P`.

Each process binds its own listening socket with SO_REUSEPORT, so the kernel spreads new connections over the
processes listening on the port; a process that dies takes only its own socket (and the connections waiting in
it) with it, and the others go on serving while `deliveryctl up` restarts it. The app is the one `uvicorn
api.app:create_app --factory` serves, with the same event loop and HTTP parser.
"""

import argparse
import socket

import uvicorn

BACKLOG = 2048
# Robots heartbeat on their streams every few seconds, so the server's WebSocket pings only find streams whose
# peer vanished without closing: every minute is enough, and each ping is a frame each way for every robot.
WS_PING_SECONDS = 60.0


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port that other processes of this user may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


class ReusePortServer(uvicorn.Server):
    """uvicorn's server, binding its SO_REUSEPORT socket only once the app has started (databases, Temporal), so
    the kernel hands a process no connection before it can answer it, also when it is restarted."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.bound: list[socket.socket] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        app_startup = self.lifespan.startup

        async def start_then_bind() -> None:
            await app_startup()
            if not self.lifespan.should_exit:
                self.bound.append(reuseport_socket(self.config.host, self.config.port))

        self.lifespan.startup = start_then_bind
        await super().startup(sockets=self.bound)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    config = uvicorn.Config("api.app:create_app", factory=True, host=args.host, port=args.port, access_log=False,
                            loop="uvloop", http="httptools", ws_ping_interval=WS_PING_SECONDS, backlog=BACKLOG)
    server = ReusePortServer(config)
    server.run(sockets=server.bound)


if __name__ == "__main__":
    main()
