from __future__ import annotations

import os
from pathlib import Path

import pytest

from certbound.errors import ConfigError
from certbound.vault import SCRYPT_COST, ScryptCost, Vault, is_slow_hash, load_or_create_master_key


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


# Issue 9 finding 15: chosen secrets get a slow hash that names its parameters
def test_a_chosen_secret_gets_scrypt_with_its_parameters_recorded() -> None:
    vault = Vault(b"k" * 32)
    stored = vault.hash_chosen_secret("pässwört")
    assert is_slow_hash(stored)
    assert stored.startswith(b"$scrypt$ln=14,r=8,p=1$")
    assert vault.verify_chosen_secret("pässwört", stored)
    assert not vault.verify_chosen_secret("pässwört!", stored)
    assert not Vault(b"o" * 32).verify_chosen_secret("pässwört", stored)  # the master key is needed too
    assert vault.hash_chosen_secret("pässwört") != stored  # salted
    assert not vault.verify_secret("pässwört", stored)  # the fast path never accepts a slow hash


def test_parameters_can_change_and_old_values_still_verify() -> None:
    vault = Vault(b"k" * 32)
    cheap = vault.hash_chosen_secret("a chosen secret", ScryptCost(log2_n=4, r=2, p=1))
    assert cheap.startswith(b"$scrypt$ln=4,r=2,p=1$")
    assert vault.verify_chosen_secret("a chosen secret", cheap)
    assert SCRYPT_COST.affordable()


def test_an_hmac_is_still_an_hmac() -> None:
    vault = Vault(b"k" * 32)
    legacy = vault.hash_secret("stored before scrypt existed")
    assert len(legacy) == 32
    assert not is_slow_hash(legacy)
    assert vault.verify_secret("stored before scrypt existed", legacy)


@pytest.mark.parametrize(
    "stored",
    [
        b"$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + b"A" * 43,  # 128 GiB: a tampered database
        b"$scrypt$ln=14,r=99,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + b"A" * 43,
        b"$scrypt$ln=14,r=8,p=9$c2FsdHNhbHRzYWx0c2FsdA$" + b"A" * 43,
        b"$scrypt$ln=4,r=2,p=1$c2FsdA$" + b"A" * 200,  # an absurd output length
        b"$scrypt$ln=4,r=2,p=1$c2FsdA$A",  # not base64
        b"$scrypt$ln=4,r=2,p=1$c2FsdA",
        b"$scrypt$",
    ],
)
def test_malformed_or_unaffordable_slow_hashes_never_verify(stored: bytes) -> None:
    assert not Vault(b"k" * 32).verify_chosen_secret("anything", stored)


def test_a_lone_surrogate_hashes_without_failing() -> None:
    vault = Vault(b"k" * 32)
    assert not vault.verify_secret("\ud800", vault.hash_secret("x"))
