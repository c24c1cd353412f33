"""Everything a request needs, built once per process: settings, database, chain access, credentials,
relay, job watcher and upload store."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass

from backend.db import Database
from backend.jobs import JobWatcher
from backend.network import Network
from backend.relay import Relay
from backend.security import Credentials
from backend.settings import ApiSettings
from backend.siwe import SiweVerifier
from backend.uploads import UploadStore
from omnitensor.blobs import BlobStore
from omnitensor.errors import ConfigError

log = logging.getLogger("omnitensor.api")


@dataclass
class Services:
    settings: ApiSettings
    db: Database
    net: Network
    credentials: Credentials
    siwe: SiweVerifier
    relay: Relay
    watcher: JobWatcher
    uploads: UploadStore
    blobs: BlobStore

    @classmethod
    def build(cls, settings: ApiSettings) -> Services:
        if settings.secret is None:
            raise ConfigError("the API needs a server secret: set OMNITENSOR_API_SECRET (e.g. `openssl rand -hex 32`)")
        secret = hashlib.sha256(settings.secret.get_secret_value().encode()).digest()
        net = Network(settings)
        db = Database(settings.database_url)
        credentials = Credentials(db, secret, access_ttl=settings.access_token_ttl_s,
                                  refresh_ttl=settings.refresh_token_ttl_s, scrypt_n=settings.scrypt_n)
        blobs = BlobStore(settings.blob_dir)
        return cls(
            settings=settings, db=db, net=net, credentials=credentials,
            siwe=SiweVerifier(db, settings.siwe_domain, net.chain.chain_id, settings.siwe_nonce_ttl_s,
                              settings.clock_skew_s),
            relay=Relay(net, db, credentials, settings),
            watcher=JobWatcher(net, db, poll=settings.poll_interval, idle_poll=settings.idle_poll_interval,
                               refund_every=settings.refund_interval_s),
            uploads=UploadStore(settings.data_dir, db, blobs, chunk_bytes=settings.chunk_bytes,
                                ttl_s=settings.upload_ttl_s),
            blobs=blobs,
        )

    def start(self) -> None:
        self.watcher.start()
        # Transactions in flight when the backend last stopped: finish them without holding up start-up.
        threading.Thread(target=self._recover, name="recovery", daemon=True).start()

    def _recover(self) -> None:
        done = self.relay.recover(log)
        if done:
            log.info("recovered %d relayed transactions left in flight", done)

    def close(self) -> None:
        self.watcher.stop()
        self.db.close()
