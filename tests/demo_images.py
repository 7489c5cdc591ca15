"""Images the view and exercise tests share: notebook 03's demo image and tiny one-file apps."""

from __future__ import annotations

from pycontainers.image import Image, ImageBuilder
from pycontainers.store import Store

BIG = 300_000


def build_demo(store: Store, base: str = "busybox", tag: str = "demo") -> Image:
    """Add a greeting and a big file, rewrite the greeting, delete the big file (notebook 03's image)."""
    b = ImageBuilder(store, base)
    with b.layer("COPY greeting.txt big.bin /app/") as ch:
        ch.add_file("/app/greeting.txt", "hello\n")
        ch.add_file("/app/big.bin", b"x" * BIG)
    with b.layer("RUN echo 'hello, layers' > /app/greeting.txt") as ch:
        ch.add_file("/app/greeting.txt", "hello, layers\n")
    with b.layer("RUN rm /app/big.bin") as ch:
        ch.remove("/app/big.bin")
    b.set(Cmd=["cat", "/app/greeting.txt"])
    return b.commit(tag)


def build_app(store: Store, name: str) -> Image:
    """busybox plus one file of its own: images that share every layer but the top one."""
    b = ImageBuilder(store, "busybox")
    with b.layer(f"COPY main.py /app/ ({name})") as ch:
        ch.add_file("/app/main.py", f"print({name!r})\n")
    return b.commit(name)
