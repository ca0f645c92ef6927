"""The reference's second API-key module in Python: a ``validate`` request object, and a
``validateErrCallback`` that finds the message in an error shape the heuristic does not know."""

type = "apiKey"


def validate_err_callback(err):
    nested = err.body.get("someNestedObject") if isinstance(err.body, dict) else None
    if isinstance(nested, dict) and nested.get("message"):
        raise Exception(nested["message"])  # message for the UI
    raise err


definition = {
    "tokenType": "apiKey",
    "accountNameFromProfileInfo": "appId",
    "auth": {
        "appId": {
            "type": "text",
            "name": " APP ID",
            "tooltip": "Log into your account and find Api key.",
        },
        "apiKey": {
            "type": "text",
            "name": "REST API Key",
            "tooltip": "Found directly next to your App ID.",
        },
        "cert": {
            # just to show that a 'textarea' input is supported as well
            "type": "textarea",
            "name": "TLS CA",
            "tooltip": "Paste text content of <code>.crt</code> file",
        },
    },
    # Every property of 'auth' is available to the validate call as {{name}}.
    "validate": {
        "method": "GET",
        "url": "http://127.0.0.1:$PORT/get-some-records/app_id={{appId}}",
        "params": {"limit": 1},
        "headers": {"Authorization": "Basic {{apiKey}}"},
    },
    "validateErrCallback": validate_err_callback,
}
