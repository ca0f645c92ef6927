"""The reference's Freshdesk API-key module in Python; ``$PORT`` is filled in at test time."""

import base64

type = "apiKey"

AGENTS_ME = "http://{{domain}}.freshdesk.test:$PORT/api/v2/agents/me"


async def request_profile_info(context):
    # curl https://mydomain.freshdesk.com/api/v2/agents/me -u myApiKey:X
    return await context.request(
        {"method": "GET", "url": AGENTS_ME, "auth": {"user": context.apiKey, "password": "X"}}
    )


async def validate(context):
    credentials = f"{context.apiKey}:X"
    encoded = base64.b64encode(credentials.encode()).decode()
    await context.request({"url": AGENTS_ME, "headers": {"Authorization": f"Basic {encoded}"}})
    # if the request doesn't fail, return true (a failure is raised to the caller)
    return True


definition = {
    "tokenType": "authentication-token",
    "auth": {
        "domain": {
            "type": "text",
            "name": "Domain",
            "tooltip": "Your Freshdesk subdomain - e.g. if the domain is "
            "<i>https://example.freshdesk.com</i> just type <b>example</b> inside this field",
        },
        "apiKey": {
            "type": "text",
            "name": "API Key",
            "tooltip": "Log into your Freshdesk account and find <i>Your API Key</i> in "
            "Profile settings page.",
        },
    },
    "accountNameFromProfileInfo": "contact.email",
    "requestProfileInfo": request_profile_info,
    "validate": validate,
}
