"""Entra ID: the real azure-identity DefaultAzureCredential gets a token from the simulator's
App Service identity endpoint, and the simulator accepts it (and nothing else) as a bearer."""

import httpx2
import pytest
from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider
from openai import AsyncAzureOpenAI, AuthenticationError

from tests.simulator.helpers import CHAT_VERSION, user

SCOPE = "https://cognitiveservices.azure.com/.default"


@pytest.fixture
def identity_env(azure_simulator, monkeypatch):
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_simulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", azure_simulator.identity_header)
    return azure_simulator


def entra_client(sim, **auth):
    return AsyncAzureOpenAI(azure_endpoint=sim.url, api_version=CHAT_VERSION, max_retries=0, **auth)


async def raw_token(sim, *, resource="https://cognitiveservices.azure.com", **query):
    async with httpx2.AsyncClient() as http:
        response = await http.get(
            sim.identity_endpoint, headers={"X-IDENTITY-HEADER": sim.identity_header},
            params={"resource": resource, "api-version": "2019-08-01", **query})
    assert response.status_code == 200
    return response.json()


async def test_default_azure_credential_token_is_accepted(identity_env):
    sim = identity_env
    sim.reset()
    credential = DefaultAzureCredential()
    try:
        provider = get_bearer_token_provider(credential, SCOPE)
        async with entra_client(sim, azure_ad_token_provider=provider) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=user("[sim:echo] signed in"), stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    finally:
        await credential.close()
    assert text == "signed in"
    token_call, chat_call = sim.requests()
    assert token_call["path"] == "/msi/token" and token_call["headers"]["x-identity-header"] == "***"
    assert token_call["query"]["resource"] == "https://cognitiveservices.azure.com"
    assert chat_call["headers"]["authorization"] == "Bearer ***" and chat_call["status"] == 200


async def test_identity_endpoint_protocol(azure_simulator):
    body = await raw_token(azure_simulator)
    assert set(body) >= {"access_token", "expires_on", "resource", "token_type"}
    assert body["token_type"] == "Bearer" and int(body["expires_on"]) > 0
    async with httpx2.AsyncClient() as http:
        no_header = await http.get(azure_simulator.identity_endpoint,
                                   params={"resource": "x", "api-version": "2019-08-01"})
    assert no_header.status_code == 401


@pytest.mark.parametrize("case", ["expired", "foreign", "other_resource"])
async def test_bad_tokens_get_401(azure_simulator, case):
    if case == "expired":
        token = (await raw_token(azure_simulator, sim_lifetime=0))["access_token"]
    elif case == "foreign":
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.c2ln"
    else:
        token = (await raw_token(azure_simulator, resource="https://vault.azure.net"))["access_token"]
    async with entra_client(azure_simulator, azure_ad_token=token) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert caught.value.status_code == 401 and "Access token" in caught.value.message
    good = (await raw_token(azure_simulator))["access_token"]
    async with entra_client(azure_simulator, azure_ad_token=good) as client:
        response = await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert response.choices[0].message.content
