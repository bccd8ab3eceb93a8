from __future__ import annotations

import os
from pathlib import Path

import pytest

from certbound.errors import ConfigError
from certbound.vault import Vault, load_or_create_master_key


def test_master_key_is_created_once_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "master.key"
    first = load_or_create_master_key(path)
    assert len(first) == 32
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_or_create_master_key(path) == first


@pytest.mark.parametrize("content", ["", "zz", "00" * 16])
def test_bad_master_key_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "master.key"
    path.write_text(content)
    with pytest.raises(ConfigError):
        load_or_create_master_key(path)


def test_secret_hash_is_keyed_and_verifies_in_constant_time_api() -> None:
    vault, other = Vault(b"k" * 32), Vault(b"o" * 32)
    digest = vault.hash_secret("s3cret")
    assert vault.verify_secret("s3cret", digest)
    assert not vault.verify_secret("s3cret!", digest)
    assert other.hash_secret("s3cret") != digest


def test_encryption_round_trip_is_bound_to_context_and_key() -> None:
    vault = Vault(b"k" * 32)
    blob = vault.encrypt(b"plain", context=b"client-1")
    assert b"plain" not in blob
    assert vault.decrypt(blob, context=b"client-1") == b"plain"
    with pytest.raises(ValueError, match="does not decrypt"):
        vault.decrypt(blob, context=b"client-2")
    with pytest.raises(ValueError, match="does not decrypt"):
        Vault(b"o" * 32).decrypt(blob, context=b"client-1")
    with pytest.raises(ValueError, match="format"):
        vault.decrypt(b"\x09" + blob[1:], context=b"client-1")


def test_processes_creating_the_key_together_agree_on_one(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    path = tmp_path / "master.key"
    with ProcessPoolExecutor(4) as pool:
        keys = list(pool.map(load_or_create_master_key, [path] * 16))
    assert len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]  # no temporary file left behind
