"""The lab hosts' way to the Debian archive: `aptproxy.py --listen IP:PORT --allow HOST[,HOST]`.

The lab's network is never routed out, so apt inside a host (a package a role installs, an
upgrade an operator makes) reaches the Debian mirror through this forward proxy on the lab
bridge's gateway address, as hosts in many data centres reach theirs. It forwards plain HTTP
GET and HEAD requests for the allowed hosts only (the mirror: nothing else is reachable from
this machine anyway) and passes the headers apt relies on for caching and partial downloads
both ways. Every host's apt is pointed at it (provision.py). Standalone: any python3, no lab
imports; the lab starts it at `up` and stops it at `down`.
"""
import http.server
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request

REQUEST_HEADERS = ("If-Modified-Since", "If-None-Match", "Range", "If-Range", "Cache-Control", "Accept")
RESPONSE_HEADERS = ("Content-Type", "Content-Length", "Last-Modified", "ETag", "Content-Range", "Accept-Ranges",
                    "Date", "Expires", "Cache-Control")


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # apt keeps one connection for many files
    allowed = ()

    def do_GET(self):
        self._forward()

    def do_HEAD(self):
        self._forward()

    def _forward(self):
        url = urllib.parse.urlsplit(self.path)
        if url.scheme != "http" or url.hostname not in self.allowed:
            self.send_error(403, "virtlab apt proxy: only http://%s" % " http://".join(self.allowed))
            return
        headers = {k: self.headers[k] for k in REQUEST_HEADERS if self.headers.get(k)}
        request = urllib.request.Request(self.path, headers=headers, method=self.command)
        try:
            upstream = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as exc:   # 304, 404, 416...: relayed as they are
            upstream = exc
        except (urllib.error.URLError, OSError) as exc:
            self.send_error(502, "virtlab apt proxy: %s" % exc)
            return
        with upstream:
            self.send_response(upstream.status)
            for name in RESPONSE_HEADERS:
                if upstream.headers.get(name):
                    self.send_header(name, upstream.headers[name])
            if not upstream.headers.get("Content-Length"):
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "GET":
                shutil.copyfileobj(upstream, self.wfile, 1 << 16)

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


def main(argv):
    if len(argv) != 4 or argv[0] != "--listen" or argv[2] != "--allow":
        sys.stderr.write("usage: aptproxy.py --listen IP:PORT --allow HOST[,HOST...]\n")
        return 2
    address, dummy_colon, port = argv[1].rpartition(":")
    ProxyHandler.allowed = tuple(argv[3].split(","))
    server = http.server.ThreadingHTTPServer((address, int(port)), ProxyHandler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
