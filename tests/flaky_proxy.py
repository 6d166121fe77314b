"""A TCP proxy in front of the test chain's RPC port that can drop every connection on demand.

``FlakyProxy(target_port)`` listens on a free local port and pipes each connection to the
node. While ``down`` is set, it closes every open connection and every new one at once, as a
node restarting or a load balancer failing would: clients see resets and closed sockets,
not slow answers.
"""

import socket
import threading
import time


class FlakyProxy:
    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._down = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.dropped = 0  # connections refused or cut while down
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_for(self, seconds: float) -> None:
        """Cut all connections now and refuse new ones for ``seconds`` (in the background)."""
        self._down.set()
        with self._lock:
            for s in list(self._open):
                self._close(s)
                self.dropped += 1

        def restore():
            time.sleep(seconds)
            self._down.clear()

        threading.Thread(target=restore, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _close(self, s: socket.socket) -> None:
        self._open.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._down.is_set():
                self.dropped += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):  # pass each piece on at once (Nagle would hold it ~40 ms)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._close(source)
            self._close(sink)
