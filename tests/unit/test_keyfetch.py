"""Fetching public keys from URLs (authserver.keyfetch: client jwks_uri and trusted issuers), over real
connections to a local HTTPS server (tests/jwks_server.py). That server is on 127.0.0.1, so most tests use
allow_insecure=True with https and the server's CA; the refusals of loopback, plain http and
private addresses are shown with allow_insecure=False."""
from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from authserver import clock
from authserver.keyfetch import KeyFetcher, KeyFetchError, destination_refusal
from tests.jwks_server import JwksServer, refused_port

JWKS = "/jwks"
DAY = 86400


def ec_jwk(kid: str | None, private: bool = False) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key if private else key.public_key()))
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def ed_jwk(kid: str) -> dict:
    jwk = json.loads(OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key()))
    jwk["kid"] = kid
    return jwk


@pytest.fixture(autouse=True)
def _reset_clock():
    yield
    clock.reset()


@pytest.fixture
def server(tmp_path):
    with JwksServer(tmp_path) as running:
        yield running


@pytest.fixture
def fetcher(server):
    return KeyFetcher(allow_insecure=True, ca_file=server.ca_file)


def fetch_error(call, *args) -> str:
    with pytest.raises(KeyFetchError) as caught:
        call(*args)
    return caught.value.message


# -- fetching and caching ------------------------------------------------------------------------

def test_fetches_once_then_serves_from_cache(server, fetcher):
    first, second = ec_jwk("one"), ed_jwk("two")
    server.serve_jwks(JWKS, [first, second], cache_control="max-age=600")
    url = server.url(JWKS)

    keys = fetcher.keys(url)

    assert set(keys) == {"one", "two"}
    assert keys["one"].key_type == "EC-P-256" and keys["one"].jwk["x"] == first["x"]
    assert keys["two"].algs == ("EdDSA",)
    assert set(fetcher.keys(url)) == {"one", "two"}
    assert fetcher.key_for(url, "two").jwk["x"] == second["x"]
    assert server.count(JWKS) == 1
    status = fetcher.status(url)
    assert status.key_ids == ("one", "two") and status.last_error is None
    assert status.expires_at == status.last_success + 600
    assert status.stale_until == status.expires_at + DAY


def test_forget_drops_the_cached_set(server, fetcher):
    server.serve_jwks(JWKS, [ec_jwk("one")])
    url = server.url(JWKS)
    fetcher.keys(url)

    fetcher.forget(url)

    assert fetcher.status(url).key_ids == ()
    fetcher.keys(url)
    assert server.count(JWKS) == 2


def test_connects_to_the_resolved_address_and_keeps_the_name_for_tls_and_host(tmp_path):
    lookups = []

    def resolver(host, port):
        lookups.append(host)
        return ["127.0.0.1"]

    with JwksServer(tmp_path, names=("keys.example.test",)) as server:
        server.serve_jwks(JWKS, [ec_jwk("one")])
        fetcher = KeyFetcher(allow_insecure=True, ca_file=server.ca_file, resolver=resolver)

        assert set(fetcher.keys(server.url(JWKS, host="keys.example.test"))) == {"one"}

        assert lookups == ["keys.example.test"]  # resolved once: the checked address is the one connected to
        assert server.seen[-1].server_name == "keys.example.test"
        assert server.seen[-1].host == f"keys.example.test:{server.port}"


def test_certificate_is_verified_against_the_name_not_the_address(server):
    fetcher = KeyFetcher(allow_insecure=True, ca_file=server.ca_file, resolver=lambda host, port: ["127.0.0.1"])
    server.serve_jwks(JWKS, [ec_jwk("one")])

    message = fetch_error(fetcher.keys, server.url(JWKS, host="elsewhere.example.test"))

    assert "certificate not trusted" in message and "elsewhere.example.test" in message
    assert server.count(JWKS) == 0


def test_certificate_from_an_unknown_ca_is_refused(server):
    server.serve_jwks(JWKS, [ec_jwk("one")])

    message = fetch_error(KeyFetcher(allow_insecure=True).keys, server.url(JWKS))

    assert "certificate not trusted" in message
    assert server.count(JWKS) == 0


@pytest.mark.parametrize(("cache_control", "fresh_for"), [
    ("max-age=600", 600),
    ("public, max-age=7200", 7200),
    ("max-age=10", 300),  # below the floor
    ("max-age=9999999", DAY),  # above the ceiling
    (None, 300),
    ("max-age=soon", 300),
    ("max-age=60, max-age=3600", 300),  # repeated: treated as absent
    ("no-store", 300),
])
def test_cache_lifetime_follows_max_age_within_floor_and_ceiling(server, fetcher, cache_control, fresh_for):
    server.serve_jwks(JWKS, [ec_jwk("one")], cache_control=cache_control)
    url = server.url(JWKS)
    fetcher.keys(url)

    clock.shift(fresh_for - 3)
    fetcher.keys(url)
    assert server.count(JWKS) == 1

    clock.shift(4)
    fetcher.keys(url)
    assert server.count(JWKS) == 2


def test_concurrent_misses_fetch_once(server, fetcher):
    server.serve_jwks(JWKS, [ec_jwk("one")], delay=0.3)
    url = server.url(JWKS)
    results, start = [], threading.Barrier(8)

    def worker():
        start.wait()
        results.append(set(fetcher.keys(url)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert results == [{"one"}] * 8
    assert server.count(JWKS) == 1


def test_while_one_thread_refreshes_others_get_the_stale_keys_at_once(server, fetcher):
    server.serve_jwks(JWKS, [ec_jwk("one")])
    url = server.url(JWKS)
    fetcher.keys(url)
    clock.shift(301)
    server.serve_jwks(JWKS, [ec_jwk("one"), ec_jwk("two")], delay=1.0)
    refreshing = threading.Thread(target=fetcher.keys, args=(url,))
    refreshing.start()
    waited_until = time.monotonic() + 5
    while server.count(JWKS) < 2 and time.monotonic() < waited_until:  # the refresh holds the URL's lock
        time.sleep(0.01)

    started = time.monotonic()
    assert set(fetcher.keys(url)) == {"one"}
    assert time.monotonic() - started < 0.5  # not the refresh's 1 s

    refreshing.join(5)
    assert set(fetcher.keys(url)) == {"one", "two"}
    assert server.count(JWKS) == 2


# -- unknown kid and rotation --------------------------------------------------------------------

def test_rotation_is_picked_up_on_unknown_kid_at_most_once_a_minute(server, fetcher):
    old, new = ec_jwk("old"), ec_jwk("new")
    server.serve_jwks(JWKS, [old], cache_control="max-age=3600")
    url = server.url(JWKS)
    assert fetcher.key_for(url, "old") is not None

    server.serve_jwks(JWKS, [old, new], cache_control="max-age=3600")
    assert fetcher.key_for(url, "new") is None  # within a minute of the last fetch
    assert server.count(JWKS) == 1

    clock.shift(61)
    assert fetcher.key_for(url, "new").jwk["x"] == new["x"]
    assert server.count(JWKS) == 2

    assert fetcher.key_for(url, "unheard-of") is None
    assert fetcher.key_for(url, "old") is not None
    assert server.count(JWKS) == 2  # a second unknown kid within the minute does not refetch

    clock.shift(61)
    assert fetcher.key_for(url, "unheard-of") is None
    assert server.count(JWKS) == 3


def test_a_failed_refetch_on_unknown_kid_keeps_the_current_keys(server, fetcher):
    server.serve_jwks(JWKS, [ec_jwk("one")], cache_control="max-age=3600")
    url = server.url(JWKS)
    fetcher.keys(url)
    server.answer(JWKS, status=503, body=b"maintenance")
    clock.shift(61)

    assert fetcher.key_for(url, "two") is None

    assert server.count(JWKS) == 2
    assert set(fetcher.keys(url)) == {"one"}
    assert "HTTP 503" in fetcher.status(url).last_error


# -- failures: stale keys, errors, logs ----------------------------------------------------------

def test_stale_keys_are_served_while_the_url_fails_then_dropped(server, fetcher, caplog):
    key = ec_jwk("one")
    server.serve_jwks(JWKS, [key])  # no Cache-Control: the 5-minute floor
    url = server.url(JWKS)
    fetcher.keys(url)
    server.answer(JWKS, status=500, body=b"<html>internal error</html>")
    caplog.set_level(logging.WARNING, logger="authserver.keyfetch")

    clock.shift(301)
    assert set(fetcher.keys(url)) == {"one"}
    assert server.count(JWKS) == 2
    status = fetcher.status(url)
    assert "HTTP 500" in status.last_error and status.last_error_at is not None
    assert set(fetcher.keys(url)) == {"one"}
    assert server.count(JWKS) == 2  # a failing URL is tried again after a minute, not on every call

    clock.shift(61)
    assert set(fetcher.keys(url)) == {"one"}
    assert server.count(JWKS) == 3

    clock.shift(DAY - 61 + 1)  # more than a day past expiry
    message = fetch_error(fetcher.keys, url)
    assert "HTTP 500" in message and url in message
    assert "internal error" not in message
    assert fetcher.status(url).key_ids == ()

    failures = [r for r in caplog.records if r.name == "authserver.keyfetch" and r.levelno == logging.WARNING]
    assert len(failures) == 3  # one line per failed fetch
    assert all(url in r.getMessage() and "HTTP 500" in r.getMessage() for r in failures)
    assert not any(key["x"] in r.getMessage() for r in caplog.records)


def test_stale_keys_are_served_while_the_issuer_is_down(server, fetcher):
    server.serve_jwks(JWKS, [ec_jwk("one")])
    url = server.url(JWKS)
    fetcher.keys(url)
    server.stop()

    clock.shift(301)

    assert set(fetcher.keys(url)) == {"one"}
    assert "Could not connect" in fetcher.status(url).last_error


def test_an_issuer_that_was_never_reached_is_an_error(fetcher):
    url = f"https://127.0.0.1:{refused_port()}/jwks"

    message = fetch_error(fetcher.keys, url)

    assert "Could not connect to 127.0.0.1" in message


def test_a_failing_url_with_nothing_cached_is_an_error_and_not_retried_at_once(server, fetcher):
    server.answer(JWKS, status=500, body=b"oops")
    url = server.url(JWKS)

    assert "answered HTTP 500" in fetch_error(fetcher.keys, url)
    assert "answered HTTP 500" in fetch_error(fetcher.key_for, url, "one")
    assert server.count(JWKS) == 1

    server.serve_jwks(JWKS, [ec_jwk("one")])
    clock.shift(61)
    assert set(fetcher.keys(url)) == {"one"}
    assert fetcher.status(url).last_error is None


# -- size and time limits ------------------------------------------------------------------------

def test_answer_up_to_the_size_limit_is_read_and_beyond_it_refused(server):
    fetcher = KeyFetcher(allow_insecure=True, ca_file=server.ca_file, max_bytes=2000)
    body = json.dumps({"keys": [ec_jwk("one")]}).encode()
    server.answer("/exact", body=body + b" " * (2000 - len(body)))
    server.answer("/over", body=body + b" " * (2001 - len(body)))

    assert set(fetcher.keys(server.url("/exact"))) == {"one"}
    assert "larger than 2000 bytes" in fetch_error(fetcher.keys, server.url("/over"))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_answer_is_refused(server, fetcher, chunked):
    server.serve_json(JWKS, {"keys": [ec_jwk("one")], "padding": "x" * 70000}, chunked=chunked)

    message = fetch_error(fetcher.keys, server.url(JWKS))

    assert "larger than 65536 bytes" in message


def test_oversized_headers_are_refused(server, fetcher):
    padding = {f"X-Padding-{n}": "p" * 1000 for n in range(90)}  # about 90 KiB of headers, a tiny body
    server.answer(JWKS, body=json.dumps({"keys": [ec_jwk("one")]}).encode(), headers=padding)

    assert "larger than 65536 bytes" in fetch_error(fetcher.keys, server.url(JWKS))


def test_slow_answer_is_refused_within_the_time_limit(server):
    fetcher = KeyFetcher(allow_insecure=True, ca_file=server.ca_file, timeout=0.3)
    server.serve_jwks(JWKS, [ec_jwk("one")], delay=3)

    started = time.monotonic()
    message = fetch_error(fetcher.keys, server.url(JWKS))

    assert time.monotonic() - started < 2.0  # not the server's 3 s
    assert "took longer than 0.3 s" in message


def test_trickling_answer_is_cut_at_the_total_time_limit(server):
    # Every byte comes well within the time limit, but the whole answer does not.
    fetcher = KeyFetcher(allow_insecure=True, ca_file=server.ca_file, timeout=0.5)
    server.serve_jwks(JWKS, [ec_jwk("one")], trickle=0.05)  # about 200 bytes: 10 s in all

    started = time.monotonic()
    message = fetch_error(fetcher.keys, server.url(JWKS))

    assert time.monotonic() - started < 2.5
    assert "took longer than 0.5 s" in message


# -- destinations --------------------------------------------------------------------------------

def test_plain_http_is_refused_unless_insecure_is_allowed(tmp_path):
    with JwksServer(tmp_path, tls=False) as server:
        server.serve_jwks(JWKS, [ec_jwk("one")])
        url = server.url(JWKS)
        assert url.startswith("http://")

        assert "must use https" in fetch_error(KeyFetcher().keys, url)
        assert server.count(JWKS) == 0

        assert set(KeyFetcher(allow_insecure=True).keys(url)) == {"one"}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_destination_is_refused_unless_insecure_is_allowed(server, host):
    server.serve_jwks(JWKS, [ec_jwk("one")])
    url = server.url(JWKS, host=host)

    message = fetch_error(KeyFetcher(ca_file=server.ca_file).keys, url)

    assert "loopback address" in message
    assert server.count(JWKS) == 0
    assert set(KeyFetcher(allow_insecure=True, ca_file=server.ca_file).keys(url)) == {"one"}


@pytest.mark.parametrize(("addresses", "refused_as"), [
    (["10.1.2.3"], "private"),
    (["93.184.215.14", "192.168.0.7"], "private"),  # one bad address refuses the name
    (["169.254.169.254"], "link-local"),
    (["::ffff:127.0.0.1"], "loopback"),
])
def test_names_resolving_to_internal_addresses_are_refused_before_connecting(addresses, refused_as):
    fetcher = KeyFetcher(resolver=lambda host, port: addresses)

    message = fetch_error(fetcher.keys, "https://keys.example.test/jwks")

    assert "keys.example.test resolves to" in message and f"a {refused_as} address" in message


def test_insecure_mode_still_refuses_link_local_and_unspecified_destinations():
    for address, category in (("169.254.169.254", "link-local"), ("0.0.0.0", "unspecified")):
        fetcher = KeyFetcher(allow_insecure=True, resolver=lambda host, port: [address])
        assert f"a {category} address" in fetch_error(fetcher.keys, "https://metadata.example.test/")


@pytest.mark.parametrize("location", [
    "https://127.0.0.1:{port}/elsewhere",  # loopback, and on the same server
    "https://10.0.0.8/jwks",
    "http://169.254.169.254/latest/meta-data/",
])
def test_redirects_are_refused(server, fetcher, location):
    location = location.format(port=server.port)
    server.serve_jwks("/elsewhere", [ec_jwk("one")])
    server.redirect(JWKS, location, status=302)

    message = fetch_error(fetcher.keys, server.url(JWKS))

    assert "answered HTTP 302, a redirect to" in message and location in message
    assert "redirects are not followed" in message
    assert server.count("/elsewhere") == 0


@pytest.mark.parametrize(("address", "refused_as"), [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),  # carrier-grade NAT (RFC 6598)
    ("fc00::1", "private"),
    ("fdab:cdef::1", "private"),  # fc00::/7
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "reserved"),  # documentation
    ("::a00:1", "reserved"),  # IPv4-compatible (deprecated)
    ("2001:db8::1", "reserved"),
])
def test_address_rule_refuses_internal_destinations(address, refused_as):
    assert destination_refusal(address) == refused_as


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "2002:808:808::1"])
def test_address_rule_allows_public_destinations(address):
    assert destination_refusal(address) is None


def test_address_rule_in_insecure_mode_allows_only_loopback_and_private():
    assert destination_refusal("127.0.0.1", allow_insecure=True) is None
    assert destination_refusal("::ffff:10.0.0.1", allow_insecure=True) is None
    assert destination_refusal("fd00::5", allow_insecure=True) is None
    assert destination_refusal("169.254.169.254", allow_insecure=True) == "link-local"
    assert destination_refusal("0.0.0.0", allow_insecure=True) == "unspecified"
    assert destination_refusal("224.0.0.1", allow_insecure=True) == "multicast"


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://keys.example.test/jwks", "must use https"),
    ("https://user:pw@keys.example.test/jwks", "must not carry credentials"),
    ("https://keys.example.test/jwks#frag", "must not have a fragment"),
    ("https:///jwks", "has no host"),
    ("https://kéys.example.test/jwks", "printable ASCII"),
    ("", "empty"),
])
def test_malformed_urls_are_refused(url, reason):
    assert reason in fetch_error(KeyFetcher(allow_insecure=True).keys, url)


# -- the key set's content -----------------------------------------------------------------------

def test_a_set_with_private_key_material_is_refused(server, fetcher):
    server.serve_jwks(JWKS, [ec_jwk("public"), ec_jwk("leaked", private=True)])

    message = fetch_error(fetcher.keys, server.url(JWKS))

    assert "private key material" in message and '"d"' in message


def test_a_symmetric_key_is_refused_as_private_material(server, fetcher):
    server.serve_jwks(JWKS, [ec_jwk("one"), {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}])

    assert "private key material" in fetch_error(fetcher.keys, server.url(JWKS))


def test_keys_for_other_uses_and_unsupported_keys_are_skipped(server, fetcher):
    encryption = dict(ec_jwk("enc"), use="enc")
    verify_only = dict(ec_jwk("ops"), key_ops=["verify"])
    wrap_only = dict(ec_jwk("wrap"), key_ops=["wrapKey"])
    x25519 = {"kty": "OKP", "crv": "X25519", "kid": "dh", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}
    server.serve_jwks(JWKS, [ec_jwk("sig"), encryption, verify_only, wrap_only, x25519, {"kty": "RSA", "kid": "bad"}])

    assert set(fetcher.keys(server.url(JWKS))) == {"sig", "ops"}


def test_a_set_without_usable_keys_is_refused(server, fetcher):
    server.serve_jwks(JWKS, [dict(ec_jwk("enc"), use="enc")])

    assert "no usable signing key" in fetch_error(fetcher.keys, server.url(JWKS))


def test_a_key_without_kid_is_allowed_only_alone(server, fetcher):
    alone = ec_jwk(None)
    server.serve_jwks("/alone", [alone])
    server.serve_jwks("/pair", [ec_jwk(None), ec_jwk("named")])

    key = fetcher.key_for(server.url("/alone"), None)
    assert key is not None and key.jwk["x"] == alone["x"]
    assert "has no \"kid\"" in fetch_error(fetcher.keys, server.url("/pair"))


def test_a_token_without_kid_gets_no_key_from_a_set_of_several(server, fetcher):
    server.serve_jwks(JWKS, [ec_jwk("one"), ec_jwk("two")])

    assert fetcher.key_for(server.url(JWKS), None) is None


def test_a_duplicate_kid_is_refused(server, fetcher):
    server.serve_jwks(JWKS, [ec_jwk("same"), ec_jwk("same")])

    assert "the kid same twice" in fetch_error(fetcher.keys, server.url(JWKS))


def test_an_answer_that_is_not_a_key_set_is_refused_with_a_short_printable_excerpt(server, fetcher):
    server.answer(JWKS, body=b"<html>\x00\x1b[31m" + b"x" * 5000 + b"</html>")
    server.answer("/object", body=b'{"issuer": "https://example.test"}')

    message = fetch_error(fetcher.keys, server.url(JWKS))
    assert "is not a JSON JWK Set" in message and "<html>" in message
    assert message.isprintable() and len(message) < 250
    assert "\"keys\" array" in fetch_error(fetcher.keys, server.url("/object"))


# -- OpenID Connect discovery --------------------------------------------------------------------

@pytest.mark.parametrize("issuer_path", ["", "/tenant-7"])
def test_discovery_finds_the_jwks_uri(server, fetcher, issuer_path):
    issuer = server.url(issuer_path)
    jwks_uri = server.url("/keys-of-tenant")
    server.serve_json(f"{issuer_path}/.well-known/openid-configuration", {"issuer": issuer, "jwks_uri": jwks_uri})
    server.serve_jwks("/keys-of-tenant", [ec_jwk("one")])

    assert fetcher.discover_jwks_uri(issuer) == jwks_uri
    assert set(fetcher.keys(fetcher.discover_jwks_uri(issuer))) == {"one"}
    assert server.count(f"{issuer_path}/.well-known/openid-configuration") == 1


@pytest.mark.parametrize("named", ["{base}/", "https://other.example.test", None])
def test_discovery_with_another_issuer_is_refused(server, fetcher, named):
    issuer = server.url("")
    document = {"jwks_uri": server.url(JWKS)}
    if named is not None:
        document["issuer"] = named.format(base=issuer)
    server.serve_json("/.well-known/openid-configuration", document)

    message = fetch_error(fetcher.discover_jwks_uri, issuer)

    assert "names the issuer" in message and "must be identical" in message


def test_discovery_refuses_a_jwks_uri_the_fetcher_would_not_fetch(server, fetcher):
    issuer = server.url("")
    server.serve_json("/.well-known/openid-configuration", {"issuer": issuer, "jwks_uri": "ftp://keys.example.test/"})

    assert "must use https" in fetch_error(fetcher.discover_jwks_uri, issuer)


def test_discovery_of_a_loopback_issuer_is_refused_unless_insecure_is_allowed(server):
    issuer = server.url("")
    server.serve_json("/.well-known/openid-configuration", {"issuer": issuer, "jwks_uri": server.url(JWKS)})

    assert "loopback address" in fetch_error(KeyFetcher(ca_file=server.ca_file).discover_jwks_uri, issuer)
    assert server.count("/.well-known/openid-configuration") == 0
