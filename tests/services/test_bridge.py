"""The bridge: its key source (a running server reads a key file rotated under it) and its
unit of work (:meth:`Bridge.run`)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from authbridge.services.bridge import Bridge, KeySource
from authbridge.tenancy.repository import EndUserRepository, EnvironmentRepository
from authbridge.vault import AssociatedData, Keyring, load_or_create, save

AAD = AssociatedData(table="authentications", column="credentials_ct", row_id="a1")


def test_a_rotated_key_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keyring, _ = load_or_create(path)
    source = KeySource(keyring, path)
    rotated, _ = keyring.with_new_primary()
    save(path, rotated)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    sealed_by_rotation = rotated.encrypt(b"secret", aad=AAD)
    assert source.current.primary == rotated.primary
    assert source.current.decrypt(sealed_by_rotation, aad=AAD) == b"secret"


def test_a_rotated_key_file_is_read_again_within_the_timestamp_granularity(
    tmp_path: Path,
) -> None:
    # A file system that keeps whole seconds (or a rotation in the same tick) leaves the
    # modification time as it was; the new file is still told apart.
    path = tmp_path / "keys.json"
    keyring, _ = load_or_create(path)
    before = path.stat()
    source = KeySource(keyring, path)
    rotated, _ = keyring.with_new_primary()
    save(path, rotated)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert source.current.primary == rotated.primary


def test_keys_from_the_environment_never_change(tmp_path: Path) -> None:
    keyring = Keyring.generate()
    source = KeySource(keyring)
    assert source.current is keyring


# -- Bridge.run: the one unit-of-work helper ----------------------------------------------------


@pytest.mark.anyio
async def test_run_commits_what_the_work_did_when_it_returns(bridge: Bridge) -> None:
    loop_thread = threading.get_ident()

    def add(session: Session) -> tuple[str, int]:
        user = EndUserRepository(session).create(environment_id(bridge, session), "run-commit")
        return user.id, threading.get_ident()

    user_id, work_thread = await bridge.run(add)

    assert work_thread != loop_thread  # off the event loop
    with bridge.session() as session:
        assert EndUserRepository(session).get(environment_id(bridge, session), user_id)


@pytest.mark.anyio
async def test_run_rolls_back_everything_when_the_work_raises(bridge: Bridge) -> None:
    def add_then_fail(session: Session) -> None:
        EndUserRepository(session).create(environment_id(bridge, session), "run-rollback")
        raise RuntimeError("the work failed after writing")

    with pytest.raises(RuntimeError, match="after writing"):
        await bridge.run(add_then_fail)

    with bridge.session() as session:
        found = EndUserRepository(session).get_by_external_id(
            environment_id(bridge, session), "run-rollback"
        )
    assert found is None


def environment_id(bridge: Bridge, session: Session) -> str:
    return EnvironmentRepository(session, bridge.keyring).get_or_create().id
