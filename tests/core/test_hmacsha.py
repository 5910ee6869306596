"""Portable: HMAC-SHA-256 on ports without an hmac module is RFC 2104's, byte for byte."""

import binascii
import hashlib

from firmware.core import hmacsha

# RFC 4231 section 4: test cases 1, 2, 3, 4, 6 (key longer than a block) and 7.
VECTORS = (
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger "
                    b"than block-size data. The key needs to be hashed before being used by "
                    b"the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
)


def _hex(data: bytes) -> str:
    return binascii.hexlify(data).decode()


def test_rfc2104_construction_matches_rfc4231() -> None:
    for key, msg, want in VECTORS:
        assert _hex(hmacsha.rfc2104(key, msg)) == want
        assert _hex(hmacsha.mac(key, msg)) == want


def test_the_vectors_catch_a_wrong_construction() -> None:
    # Inner and outer pads swapped: a plausible slip the vectors must reject.
    key = b"Jefe" + b"\0" * 60
    inner = hashlib.sha256(bytes([b ^ 0x5C for b in key]) + b"what do ya want for nothing?")
    swapped = hashlib.sha256(bytes([b ^ 0x36 for b in key]) + inner.digest()).digest()
    assert _hex(swapped) != VECTORS[1][2]


def test_same_as_the_standard_module_where_there_is_one() -> None:
    try:
        import hmac
    except ImportError:
        return  # this port has none: the RFC vectors above are the reference
    for n in (0, 1, 31, 32, 63, 64, 65, 200):
        key = bytes([(7 * i + n) & 0xFF for i in range(n)])
        msg = bytes([(3 * i) & 0xFF for i in range(n * 3)])
        assert hmacsha.rfc2104(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_equal_compares_whole_values() -> None:
    a = hmacsha.mac(b"k", b"m")
    assert hmacsha.equal(a, a)
    assert not hmacsha.equal(a, a[:-1] + bytes([a[-1] ^ 1]))
    assert not hmacsha.equal(a, a[:16])
