"""The DynamoDB- and SES-compatible server of the tests: moto's server, one request at a time.

moto_server handles requests on threads, and its UpdateItem is not atomic across threads, so
concurrent ADDs to one item can lose an update. DynamoDB applies each write to an item
atomically. Here connections still get their own threads, but requests are processed under
one lock, which gives the tests DynamoDB's guarantee.

Usage: emulator.py PORT  (binds 127.0.0.1 only)
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, run_simple


def main() -> None:
    port = int(sys.argv[1])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    # Tests open a thousand connections at once; werkzeug's listen backlog of 128 would drop
    # connection attempts, which clients see as connect timeouts on a loaded machine.
    BaseWSGIServer.request_queue_size = 4096
    run_simple(
        "127.0.0.1", port, one_at_a_time, threaded=True, use_reloader=False, request_handler=MotoRequestHandler
    )


if __name__ == "__main__":
    main()
