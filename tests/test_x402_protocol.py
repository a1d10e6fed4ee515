"""x402's shapes and checks without a server: hostile payment headers give refusals, never
exceptions; the EIP-712 digest is the one computed here by hand (and the one the deployed
token computes); the committed contract artefact is what the pinned solc-js makes of the
source; the x402 settings and their `dev` defaults."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from eth_abi import encode
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from billing import x402
from billing.x402_build import ARTEFACT, SOURCE, compile_source, strip_metadata
from billing.x402_chain import DevChain
from billing.x402_verify import refusal, sign, typed_data
from imagefleet.settings import SettingError, load_settings
from imagefleet.x402_payer import PaymentError, authorize, choose

ASSET = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
PAYER = Account.from_key(b"\x11" * 32)
NEED = x402.requirements(
    amount=1234,
    pay_to="0x" + "ab" * 20,
    asset=ASSET,
    network="base",
    resource="http://127.0.0.1:8080/v1/jobs",
    description="crop",
    max_timeout_seconds=120,
    token_name="USD Coin",
    token_version="2",
)


def b64(document: Any) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.b64encode(raw).decode()


# Made once, at collection: valid for a year, so a test that reads it late in a long suite
# (CI ran it 10 minutes after collection) still finds it inside its window.
GOOD = x402.encode_payment(authorize(PAYER.key, NEED, valid_for=365 * 24 * 3600))
GOOD_JSON = json.loads(base64.b64decode(GOOD))


def without(path: tuple[str, ...]) -> dict[str, Any]:
    document = json.loads(json.dumps(GOOD_JSON))
    *parents, last = path
    node = document
    for key in parents:
        node = node[key]
    del node[last]
    return document


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, x402.INVALID_PAYLOAD),
        ("", x402.INVALID_PAYLOAD),
        ("%%% not base64 %%%", x402.INVALID_PAYLOAD),
        (b64(b"not json"), x402.INVALID_PAYLOAD),
        (b64([]), x402.INVALID_PAYLOAD),
        (b64({"x402Version": 1}), x402.INVALID_PAYLOAD),
        (b64(without(("payload", "authorization"))), x402.INVALID_PAYLOAD),
        (b64(without(("payload", "signature"))), x402.INVALID_PAYLOAD),
        (b64(without(("payload", "authorization", "nonce"))), x402.INVALID_PAYLOAD),
        (b64(without(("network",))), x402.INVALID_PAYLOAD),
        (b64({**GOOD_JSON, "x402Version": 3}), x402.INVALID_VERSION),
        (b64({**GOOD_JSON, "x402Version": 2}), x402.INVALID_PAYLOAD),  # v2 without `accepted`
        (
            b64({**GOOD_JSON, "payload": {**GOOD_JSON["payload"], "authorization": {
                **GOOD_JSON["payload"]["authorization"], "value": 1234}}}),
            x402.INVALID_PAYLOAD,
        ),  # numbers travel as decimal strings
        ("A" * (x402.MAX_HEADER_CHARS + 4), x402.INVALID_PAYLOAD),
    ],
    ids=[
        "absent", "empty", "not base64", "not json", "array", "no payload", "no authorization",
        "no signature", "no nonce", "no network", "version 3", "v2 without accepted",
        "number value", "huge",
    ],
)  # fmt: skip
def test_a_garbage_payment_header_is_a_refusal(header: str | None, reason: str) -> None:
    found = x402.decode_payment(header)
    assert isinstance(found, x402.Refusal) and found.reason == reason, found


def test_the_good_header_reads_back_and_passes_the_local_checks() -> None:
    payment = x402.decode_payment(GOOD)
    assert isinstance(payment, x402.PaymentPayload)
    assert GOOD_JSON["payload"]["authorization"]["from"] == PAYER.address
    assert set(GOOD_JSON) == {"x402Version", "scheme", "network", "payload"}
    assert refusal(payment, NEED, now=int(time.time()), time_limit=60) is None


@pytest.mark.parametrize(
    "field, value",
    [("from", "0x1234"), ("to", "nope"), ("value", "-1"), ("validBefore", "1e9"),
     ("validAfter", str(2**256)), ("nonce", "0x" + "zz" * 32)],
)  # fmt: skip
def test_a_malformed_authorization_field_is_refused_by_name(field: str, value: str) -> None:
    document = json.loads(json.dumps(GOOD_JSON))
    document["payload"]["authorization"][field] = value
    payment = x402.decode_payment(b64(document))
    assert isinstance(payment, x402.PaymentPayload)
    found = refusal(payment, NEED, now=int(time.time()), time_limit=60)
    assert found is not None and (found.reason, field in found.detail) == (
        x402.INVALID_PAYLOAD,
        True,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=400),
        st.binary(max_size=400).map(lambda raw: base64.b64encode(raw).decode()),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=12), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(b64),
    )
)
def test_no_header_makes_the_reader_or_the_checks_raise(header: str) -> None:
    found = x402.decode_payment(header)
    if isinstance(found, x402.PaymentPayload):
        assert refusal(found, NEED, now=int(time.time()), time_limit=60) is not None


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(list(GOOD_JSON["payload"]["authorization"])), st.text()))
def test_any_authorization_strings_are_refused_not_raised(changes: dict[str, str]) -> None:
    document = json.loads(json.dumps(GOOD_JSON))
    document["payload"]["authorization"].update(changes)
    payment = x402.decode_payment(b64(document))
    assert isinstance(payment, x402.PaymentPayload)
    found = refusal(payment, NEED, now=int(time.time()), time_limit=60)
    if changes and any(GOOD_JSON["payload"]["authorization"][k] != v for k, v in changes.items()):
        assert found is not None


def _domain_separator(chain: int, asset: str) -> bytes:
    """The token's EIP-712 domain separator ("USD Coin", version "2"), by hand."""
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(
                    text="EIP712Domain(string name,string version,uint256 chainId,"
                    "address verifyingContract)"
                ),
                keccak(text="USD Coin"),
                keccak(text="2"),
                chain,
                asset,
            ],
        )
    )


def _eip712_digest(authorization: x402.Authorization, chain: int, asset: str) -> bytes:
    """EIP-712 by hand: keccak(0x1901 || domainSeparator || hashStruct(message))."""
    domain = _domain_separator(chain, asset)
    struct = keccak(
        encode(
            ["bytes32", "address", "address", "uint256", "uint256", "uint256", "bytes32"],
            [
                keccak(
                    text="TransferWithAuthorization(address from,address to,uint256 value,"
                    "uint256 validAfter,uint256 validBefore,bytes32 nonce)"
                ),
                authorization.from_,
                authorization.to,
                int(authorization.value),
                int(authorization.valid_after),
                int(authorization.valid_before),
                bytes.fromhex(authorization.nonce[2:]),
            ],
        )
    )
    return keccak(b"\x19\x01" + domain + struct)


def test_the_signature_is_over_the_eip712_digest_computed_by_hand() -> None:
    payment = authorize(PAYER.key, NEED)
    authorization = payment.payload.authorization
    raw = bytes.fromhex(payment.payload.signature[2:])
    digest = _eip712_digest(authorization, 8453, ASSET)
    vrs = keys.Signature(vrs=(raw[64] - 27, int.from_bytes(raw[:32]), int.from_bytes(raw[32:64])))
    assert vrs.recover_public_key_from_msg_hash(digest).to_checksum_address() == PAYER.address


def test_the_deployed_token_has_the_same_domain_and_typehash() -> None:
    chain = DevChain("USD Coin", "2")
    domain = _domain_separator(chain.chain_id, chain.asset)
    out = chain.tester.call(
        {
            "from": chain.operator,
            "to": chain.asset,
            "data": "0x" + keccak(text="DOMAIN_SEPARATOR()")[:4].hex(),
        }
    )
    assert bytes.fromhex(out[2:]) == domain
    # And a signature over our typed data is one the token takes (a dry run of the transfer).
    payer = Account.create()
    chain.mint(payer.address, 10)
    need = replace(NEED, network=chain.network, asset=chain.asset, max_amount_required="10")
    payment = authorize(payer.key, need)
    assert chain.simulate_transfer(payment.payload.authorization, payment.payload.signature) is None
    assert chain.balance_of(payer.address) == 10


def test_sign_and_typed_data_agree_with_eth_accounts_own_recovery() -> None:
    authorization = authorize(PAYER.key, NEED).payload.authorization
    typed = typed_data(authorization, name="USD Coin", version="2", chain=8453, asset=ASSET)
    from eth_account.messages import encode_typed_data

    signature = sign(typed, PAYER.key)
    recovered = Account.recover_message(
        encode_typed_data(full_message=typed), signature=bytes.fromhex(signature[2:])
    )
    assert recovered == PAYER.address


def test_the_v1_challenge_body_has_the_spec_fields() -> None:
    body = json.loads(x402.challenge_body([NEED], "X-PAYMENT header is required"))
    assert set(body) == {"x402Version", "error", "accepts"} and body["x402Version"] == 1
    assert set(body["accepts"][0]) == {
        "scheme", "network", "maxAmountRequired", "asset", "payTo", "resource", "description",
        "mimeType", "maxTimeoutSeconds", "extra",
    }  # fmt: skip
    assert body["accepts"][0]["maxAmountRequired"] == "1234"
    assert x402.decode_challenge(json.dumps(body)).accepts == [NEED]


def test_networks_by_name_and_by_caip2() -> None:
    assert (x402.chain_id("base"), x402.chain_id("eip155:84532")) == (8453, 84532)
    assert x402.chain_id("nowhere") is None and x402.chain_id("eip155:x") is None
    assert x402.caip2("base-sepolia") == "eip155:84532"


def test_the_payer_chooses_an_exact_offer_and_refuses_what_it_cannot_sign() -> None:
    other = replace(NEED, scheme="upto")
    assert choose([other, NEED]) is NEED
    assert choose([NEED], network="eip155:8453") is NEED
    with pytest.raises(PaymentError):
        choose([NEED], network="base-sepolia")
    with pytest.raises(PaymentError):
        authorize(PAYER.key, replace(NEED, extra=None))


def test_the_settlement_header_round_trips() -> None:
    settled = x402.SettlementResponse(True, "0x" + "ab" * 32, "base", PAYER.address)
    header = x402.payment_response_header(settled)
    assert json.loads(base64.b64decode(header)) == {
        "success": True,
        "transaction": "0x" + "ab" * 32,
        "network": "base",
        "payer": PAYER.address,
    }
    assert x402.decode_payment_response(header) == settled
    with pytest.raises(ValueError):
        x402.decode_payment_response("%%%")


def test_the_committed_artefact_is_what_the_pinned_solc_makes_of_the_source() -> None:
    committed = json.loads(ARTEFACT.read_text())
    fresh = compile_source(SOURCE.read_text())
    assert fresh["abi"] == committed["abi"]
    # The code first (the trailer only hashes the metadata, comments included), then all.
    assert strip_metadata(fresh["bytecode"]) == strip_metadata(committed["bytecode"]), (
        "FleetUSD.sol's code changed: python -m billing.x402_build"
    )
    assert fresh == committed, "FleetUSD.sol changed (its metadata): python -m billing.x402_build"
    assert len(strip_metadata(committed["bytecode"])) < len(committed["bytecode"])


def test_x402_settings_are_off_by_default_and_read_the_dev_payer(tmp_path: Path) -> None:
    assert load_settings({}).x402 == "off"
    with pytest.raises(SettingError):
        load_settings({"FLEET_X402": "maybe"})
    (tmp_path / "x402-payer.json").write_text(
        json.dumps({"payTo": "0x" + "cd" * 20, "network": "eip155:7", "asset": ASSET,
                    "facilitatorUrl": "http://127.0.0.1:8402"})
    )  # fmt: skip
    env = {"FLEET_VAR_DIR": str(tmp_path)}
    dev = load_settings({**env, "FLEET_X402": "DEV"})
    assert (dev.x402, dev.x402_pay_to, dev.x402_network) == ("dev", "0x" + "cd" * 20, "eip155:7")
    assert dev.x402_facilitator_url == "http://127.0.0.1:8402"
    with pytest.raises(SettingError):  # `on` reads no dev file: it needs its payee and facilitator
        load_settings({**env, "FLEET_X402": "on", "FLEET_X402_NETWORK": "base-sepolia"})
    payee, facilitator = "0x" + "ef" * 20, "http://127.0.0.1:9"
    on = load_settings(
        {**env, "FLEET_X402": "on", "FLEET_X402_NETWORK": "base-sepolia",
         "FLEET_X402_PAY_TO": payee, "FLEET_X402_FACILITATOR_URL": facilitator,
         "FLEET_X402_RPC_URL": "http://127.0.0.1:9/rpc"}
    )  # fmt: skip
    assert (on.x402_pay_to, on.x402_network, on.x402_facilitator_url) == (
        payee,
        "base-sepolia",
        facilitator,
    )
    assert on.x402_asset == ASSET and (on.x402_token_name, on.x402_token_version) == (
        "USD Coin",
        "2",
    )


def test_msgspec_refuses_unknown_payload_types_quietly() -> None:
    assert isinstance(x402.payment_from_json("a string"), x402.Refusal)
    assert isinstance(x402.requirements_from_json({"amount": 5}), x402.Refusal)
    v2 = x402.requirements_from_json(msgspec.to_builtins(x402.to_v2(NEED)))
    assert isinstance(v2, x402.PaymentRequirements) and v2.max_amount_required == "1234"
