"""The reference's HTTP Basic pwd module, using the outbound client directly."""

type = "pwd"


async def validate(context):
    response = await context.http.get(
        "http://127.0.0.1:$PORT/basic-auth", auth=(context.username, context.password)
    )
    if response.status_code == 401:
        raise context.CredentialsRejected("Wrong username or password.")
    response.raise_for_status()


definition = {"validate": validate}
