"""The reference's pwd module: username and password exchanged for an expiring token."""

type = "pwd"


async def validate(context):
    data = await context.request(
        {
            "method": "POST",
            # the URL for the username/password authentication
            "url": "http://127.0.0.1:$PORT/auth",
            "json": {"username": "{{username}}", "password": "{{password}}"},
        }
    )
    # verify authentication works
    if not data.get("isValid"):
        raise Exception("Invalid username/password combination.")
    # expires: a datetime, or a number / numeric string of seconds of lifetime
    return {"token": data["token"], "expires": data["expiresIn"]}


definition = {
    # optional for 'pwd': these are the default fields
    "auth": {
        "username": {"type": "text", "name": "Username", "tooltip": "Username"},
        "password": {"type": "password", "name": "Password", "tooltip": "Password"},
    },
    # the only mandatory property for the 'pwd' authentication type
    "validate": validate,
}
