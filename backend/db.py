"""Persistence through SQLAlchemy 2: a SQLite file by default, PostgreSQL by URL. Everything a restart must
not lose lives here: accounts, refresh tokens, SIWE nonces, upload sessions, relayed transactions (recorded
before they are broadcast), jobs, allocations and idempotency records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

# uint256 values (amounts, job ids) are kept as decimal strings: no database has a 256-bit integer type.
U256 = String(78)


def now() -> float:
    return time.time()


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # custodial | wallet
    address: Mapped[str] = mapped_column(String(42), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    api_key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    keystore: Mapped[str | None] = mapped_column(Text)  # Web3 Secret Storage JSON (scrypt), custodial only
    created_at: Mapped[float] = mapped_column(Float, default=now)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(40), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class SiweNonce(Base):
    __tablename__ = "siwe_nonces"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float)


class Upload(Base):
    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # model | dataset
    name: Mapped[str] = mapped_column(String(100), default="")
    format: Mapped[str | None] = mapped_column(String(16))
    price_wei: Mapped[str | None] = mapped_column(U256)
    meta: Mapped[str] = mapped_column(Text, default="{}")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | complete
    created_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float] = mapped_column(Float)
    resource_id: Mapped[int | None] = mapped_column(BigInteger)  # model or dataset id once registered
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block: Mapped[int | None] = mapped_column(BigInteger)


class UploadChunk(Base):
    __tablename__ = "upload_chunks"
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(Integer)


class RelayedTx(Base):
    """A transaction the relayer signed for an account, written before its first broadcast: a retry with the
    same idempotency key, or a restart, finds it and never sends a second one."""

    __tablename__ = "relayed_txs"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    tx_hash: Mapped[str] = mapped_column(String(66))
    raw_tx: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=now, index=True)
    status: Mapped[str] = mapped_column(String(16), default="sent")  # sent | applied | reverted


class Job(Base):
    __tablename__ = "jobs"
    job_id: Mapped[str] = mapped_column(U256, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    model_id: Mapped[int] = mapped_column(BigInteger)
    node: Mapped[str] = mapped_column(String(42))
    job_tuple: Mapped[str] = mapped_column(Text)  # the Job struct as JSON, to refund it after its deadline
    fee_wei: Mapped[str] = mapped_column(U256)
    deadline: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | settled | failed | refunded
    failure_code: Mapped[int | None] = mapped_column(Integer)
    request_tx: Mapped[str] = mapped_column(String(66))
    opened_block: Mapped[int] = mapped_column(BigInteger)
    settle_tx: Mapped[str | None] = mapped_column(String(66))
    output: Mapped[bytes | None] = mapped_column(LargeBinary)  # inline output, or the blob URI
    output_digest: Mapped[str | None] = mapped_column(String(66))
    accepted_at: Mapped[float] = mapped_column(Float)
    opened_at: Mapped[float] = mapped_column(Float)
    settled_at: Mapped[float | None] = mapped_column(Float)


class Allocation(Base):
    __tablename__ = "allocations"
    allocation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    node: Mapped[str] = mapped_column(String(42))
    open_tx: Mapped[str] = mapped_column(String(66))
    close_tx: Mapped[str | None] = mapped_column(String(66))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Cursor(Base):
    """The last block whose settlement events were applied to the jobs table."""

    __tablename__ = "cursors"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger)


class Database:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back when it raises."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
