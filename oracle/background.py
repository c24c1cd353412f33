"""An oracle node running its own event loop in a background thread: for embedding a node in another
process (tests, benchmarks) instead of running `omnitensor-node`."""

from __future__ import annotations

import asyncio
import threading

from oracle.node import OracleNode
from oracle.settings import NodeSettings


class BackgroundNode:
    def __init__(self, settings: NodeSettings) -> None:
        self.node = OracleNode(settings)
        self.node.setup()
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to the owner by stop()
            self.error = exc

    async def _serve(self) -> None:
        await self.node.start_health()
        try:
            await self.node.run_forever()
        finally:
            await self.node.cleanup()

    def stop(self, timeout: float = 30) -> None:
        """Stops the node and waits for it; re-raises what made it fail, if anything."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.node.stop)
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
