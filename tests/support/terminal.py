"""A command in a pseudo-terminal, read through a terminal emulator (pyte): what a person
would see on their screen, frame by frame, not the raw bytes."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence

import pyte


class Terminal:
    """`Terminal(argv, env).run(until=...)`: start `argv` in a pty of `cols`×`lines`, feed its
    output to an emulated screen, and call `on_frame(screen_text)` whenever it changed."""

    def __init__(
        self, argv: Sequence[str], env: dict[str, str], *, cols: int = 120, lines: int = 40
    ) -> None:
        self.argv = list(argv)
        self.env = {**env, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(lines)}
        self.env.pop("NO_COLOR", None)
        self.screen = pyte.Screen(cols, lines)
        self.stream = pyte.ByteStream(self.screen)
        self.cols, self.lines = cols, lines
        self.returncode: int | None = None

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def run(self, on_frame: Callable[[str], None], timeout: float) -> int:
        """Run to the end; AssertionError (with the screen) after `timeout` seconds."""
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.lines, self.cols, 0, 0))
        proc = subprocess.Popen(
            self.argv, stdin=slave, stdout=slave, stderr=slave, env=self.env, close_fds=True
        )
        os.close(slave)
        deadline = time.monotonic() + timeout
        last = ""
        try:
            while True:
                ready, _, _ = select.select([master], [], [], 0.05)
                if ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: the child closed the terminal
                        data = b""
                    if not data and proc.poll() is not None:
                        break
                    self.stream.feed(data)
                    shown = self.text()
                    if shown != last:
                        last = shown
                        on_frame(shown)
                elif proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"still running after {timeout}s; screen:\n{self.text()}")
        finally:
            os.close(master)
            proc.wait(10)
        self.returncode = proc.returncode
        return proc.returncode
