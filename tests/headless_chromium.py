"""Open a page in headless Chromium and report what happened, over the DevTools protocol
on a pipe (`--remote-debugging-pipe`: JSON messages ending in a NUL byte, commands on
Chromium's fd 3, replies and events on its fd 4), so no driver or websocket library is
needed.
"""

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

# As the machine's network is closed: no background connections, no first-run work.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe", "about:blank"]


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@dataclass
class PageVisit:
    requests: list = field(default_factory=list)      # every URL the page asked for
    console_errors: list = field(default_factory=list)
    images: list = field(default_factory=list)        # [alt, complete, naturalWidth]
    screenshot: bytes = b""
    measured: object = None                           # what `measure` returned


class _Pipe:
    def __init__(self, process, commands, replies):
        self.process, self.commands = process, commands
        self.messages = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, args=(replies,), daemon=True).start()

    def _read(self, fd):
        buffer = b""
        with os.fdopen(fd, "rb", buffering=0) as f:
            while chunk := f.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for message in messages:
                    self.messages.put(json.loads(message))

    def send(self, method, events, session=None, timeout=60, **params):
        """Send a command; return its result, putting every event that arrives meanwhile
        into `events`."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            events.append(reply)

    def wait_for(self, method, events, timeout=60):
        for event in events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            events.append(event)
            if event.get("method") == method:
                return event


def visit(chromium, url, width=1200, measure=None):
    """Load `url`, wait for its load event, and return a PageVisit with a full-page
    screenshot at `width` pixels; `measure`, a JavaScript expression giving JSON text,
    is evaluated at that width and its value parsed into PageVisit.measured."""
    to_chromium, from_chromium = os.pipe(), os.pipe()
    high = [os.dup(fd) for fd in (to_chromium[0], from_chromium[1])]

    def on_fds_3_and_4():  # in the child: where --remote-debugging-pipe expects them
        os.dup2(high[0], 3)
        os.dup2(high[1], 4)

    profile = tempfile.mkdtemp(prefix="snnflow-chromium-")
    process = subprocess.Popen([chromium, f"--user-data-dir={profile}", *FLAGS],
                               preexec_fn=on_fds_3_and_4, pass_fds=(3, 4),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for fd in (*high, to_chromium[0], from_chromium[1]):
        os.close(fd)
    pipe, events, seen = _Pipe(process, to_chromium[1], from_chromium[0]), [], PageVisit()
    try:
        target = pipe.send("Target.createTarget", events, url="about:blank")["targetId"]
        session = pipe.send("Target.attachToTarget", events, targetId=target,
                            flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            pipe.send(f"{domain}.enable", events, session)
        pipe.send("Page.navigate", events, session, url=url)
        pipe.wait_for("Page.loadEventFired", events)
        script = ("JSON.stringify(Array.from(document.images).map("
                  "i => [i.alt, i.complete, i.naturalWidth]))")
        result = pipe.send("Runtime.evaluate", events, session, expression=script,
                           returnByValue=True)
        seen.images = json.loads(result["result"]["value"])
        height = pipe.send("Runtime.evaluate", events, session, returnByValue=True,
                           expression="document.documentElement.scrollHeight")
        pipe.send("Emulation.setDeviceMetricsOverride", events, session, width=width,
                  height=int(height["result"]["value"]), deviceScaleFactor=1, mobile=False)
        if measure is not None:
            result = pipe.send("Runtime.evaluate", events, session, expression=measure,
                               returnByValue=True)
            seen.measured = json.loads(result["result"]["value"])
        shot = pipe.send("Page.captureScreenshot", events, session, format="png")
        seen.screenshot = base64.b64decode(shot["data"])
        time.sleep(0.5)  # late console messages
        while not pipe.messages.empty():
            events.append(pipe.messages.get())
    finally:
        try:
            pipe.send("Browser.close", [], timeout=10)
        except Exception:
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(to_chromium[1])
        shutil.rmtree(profile, ignore_errors=True)
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            seen.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            seen.console_errors.append(str(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            seen.console_errors.append(str(params.get("exceptionDetails")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            seen.console_errors.append(params["entry"].get("text", ""))
    return seen
